"""The benchmark suite runs at ci scale and every peer agrees with our answers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = {"A", "B", "C", "D", "E", "F", "H"}


@pytest.mark.timeout(1500)
def test_ci_benchmarks_run_and_peers_agree(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--scale", "ci", "--only", "a,b,c,d,e,f,h",
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"benchmarks failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["scale"] == "ci"
    assert results["environment"]["cores"] >= 1 and results["environment"]["cpu_model"]
    assert {w["workload"] for w in results["workloads"]} == WORKLOADS
    for workload in results["workloads"]:
        assert "error" not in workload, workload.get("error")
        assert workload["rows"] and workload["goals"]
        for row in workload["rows"]:
            assert row["warm_s"] > 0, row
        for goal in workload["goals"]:
            assert goal["ratio"] > 0 and isinstance(goal["met"], bool), goal
    markdown = (tmp_path / "results.md").read_text()
    assert "| A |" in markdown and "| D |" in markdown
    assert (tmp_path / "ratios.png").stat().st_size > 0
    assert (tmp_path / "meteo_map.png").stat().st_size > 0
