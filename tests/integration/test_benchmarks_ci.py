"""The benchmark suite runs at ci scale and every peer agrees with our answers; the method
(round-robin min/median/IQR, thread labels, fresh-process cold starts and memory, load per
workload, RESULTS.md from results.json stamped when busy) shows in what it writes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import harness

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = {"A", "B", "C", "D", "E", "F", "H"}
ROUND_ROBIN = {"A", "B", "C", "D", "E", "F"}
PROBED = {"A", "B", "D", "E"}


@pytest.mark.timeout(1500)
def test_ci_benchmarks_run_and_peers_agree(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--scale", "ci", "--only", "a,b,c,d,e,f,h",
         "--out", str(tmp_path), "--results", str(tmp_path / "RESULTS.md"), "--force-busy"],
        cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"benchmarks failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["scale"] == "ci"
    assert results["environment"]["cores"] >= 1 and results["environment"]["cpu_model"]
    assert {w["workload"] for w in results["workloads"]} == WORKLOADS
    for workload in results["workloads"]:
        assert "error" not in workload, workload.get("error")
        assert workload["rows"] and workload["goals"]
        assert workload["load"]["foreign_cpu_cores"] >= 0 and workload["load"]["load_avg_start"]
        for row in workload["rows"]:
            assert row["warm_s"] > 0, row
        if workload["workload"] in ROUND_ROBIN:
            timed = [r for r in workload["rows"] if "min_s" in r]
            assert timed and all(r["threads"] >= 1 and r["repeats"] >= 3 and
                                 r["min_s"] <= r["warm_s"] for r in timed), workload["workload"]
        if workload["workload"] in PROBED:
            cold = [r for r in workload["rows"] if r.get("cold_empty_cache_s")]
            assert cold and all(r["cold_s"] > 0 and r["own_process_peak_mib"] is not None
                                for r in cold), workload["workload"]
        for goal in workload["goals"]:
            assert goal["ratio"] > 0 and isinstance(goal["met"], bool), goal
    markdown = (tmp_path / "results.md").read_text()
    assert "| A |" in markdown and "| D |" in markdown
    assert (tmp_path / "ratios.png").stat().st_size > 0
    assert (tmp_path / "meteo_map.png").stat().st_size > 0
    written = (tmp_path / "RESULTS.md").read_text()
    assert "Command: `python -m benchmarks --scale ci" in written and "| met |" in written
    _, stamp = harness.results_stamp(results, force_busy=True)
    assert (stamp is None) == ("measured under load" not in written), stamp
    assert (tmp_path / "results-ratios.png").stat().st_size > 0
