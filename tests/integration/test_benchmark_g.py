"""Workload G (workspace start, SPE spawner vs plain DockerSpawner, then concurrent starts of one
project) runs at ci scale and cleans up."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.workload_g import BIG, CONCURRENT, DATASET_BYTES, REFERENCE, size_label
from lnds_spe.hub.firewall import BRIDGE_TABLE

REPO = Path(__file__).resolve().parents[2]
IMPLS = {"SPEDockerSpawner", "DockerSpawner"}
RUN_PREFIXES = ("gspe", "gplain")


def engine_names() -> set[str]:
    """Names of the engine's containers, volumes and networks that workload G's runs use."""
    names = set()
    for command in (["podman", "ps", "-a", "--format", "{{.Names}}"],
                    ["podman", "volume", "ls", "--format", "{{.Name}}"],
                    ["podman", "network", "ls", "--format", "{{.Name}}"]):
        listing = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0, f"{' '.join(command)} failed: {listing.stderr}"
        names |= {n for n in listing.stdout.split() if n.startswith(RUN_PREFIXES)}
    return names


def benchmark_chains() -> set[str]:
    """The host firewall chains of workload G's projects and its SPE hub's port guard, and the
    project's bridge chains."""
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
    bridge = subprocess.run(["nft", "list", "table", "bridge", BRIDGE_TABLE],
                            capture_output=True, text=True).stdout
    return ({line.split()[1] for line in rules.splitlines()
             if line.startswith(("-N SPE-gbench", "-N SPE-HUB-gspe"))}
            | {line.split()[1] for line in bridge.splitlines()
               if line.strip().startswith("chain SPE-gbench")})


@pytest.mark.timeout(600)
def test_workload_g_times_both_spawners_and_cleans_up(tmp_path):
    names_before, chains_before = engine_names(), benchmark_chains()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--scale", "ci", "--only", "g",
         "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"workload G failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads((tmp_path / "results.json").read_text())
    [workload] = results["workloads"]
    assert "error" not in workload, workload.get("error")
    assert workload["workload"] == "G" and workload["scale"] == "ci"

    *sequential, together = workload["rows"]
    rows = {row["impl"]: row for row in sequential}
    big = BIG.format(size=size_label(DATASET_BYTES["ci"]))
    assert set(rows) == IMPLS | {big, REFERENCE} and len(sequential) == 4
    for impl in IMPLS | {big}:
        extra = rows[impl]["extra"]
        assert extra["starts"] == 2 and len(extra["samples_s"]) == 2, rows[impl]
        assert all(0 < s < 180 for s in extra["samples_s"]), rows[impl]
        assert 0 < rows[impl]["cold_s"] < 180 and 0 < rows[impl]["warm_s"] < 180, rows[impl]
        assert extra["jupyterlab"].startswith("4."), rows[impl]
    served = {rows[impl]["extra"]["image_id"] for impl in IMPLS | {big}}
    assert len(served) == 1, f"the two hubs started different images: {served}"
    reference = rows[REFERENCE]
    assert reference["threads"] == 1 and len(reference["extra"]["samples_s"]) == 2, reference

    small_goal, big_goal = workload["goals"]
    plain, spe = rows["DockerSpawner"]["warm_s"], rows["SPEDockerSpawner"]["warm_s"]
    assert small_goal["ratio"] == pytest.approx(plain / spe)
    assert small_goal["target"] == pytest.approx(1 / 1.3)
    assert small_goal["met"] is (plain / spe >= 1 / 1.3)
    budget = plain + reference["warm_s"]
    assert big_goal["ratio"] == pytest.approx(budget / rows[big]["warm_s"])
    assert big_goal["met"] is (budget / rows[big]["warm_s"] >= 1 / 1.3)
    # the containers' CPU is not counted against the run; an idle pre-sample is taken instead
    assert workload["load"]["foreign_cpu_cores_before"] >= 0
    assert "| G |" in (tmp_path / "results.md").read_text()

    # every workspace of the concurrent starts reached a ready JupyterLab
    count = CONCURRENT["ci"]
    assert together["case"] == f"{count} concurrent starts of one project, p50", together
    assert together["impl"] == "SPEDockerSpawner"
    samples = together["extra"]["samples_s"]
    assert together["extra"]["starts"] == count == len(samples) and all(s > 0 for s in samples)
    assert together["warm_s"] == pytest.approx(statistics.median(samples), abs=1e-3)
    assert together["extra"]["max_s"] == pytest.approx(max(samples), abs=1e-3)

    assert engine_names() <= names_before, "workload G left containers, volumes or networks"
    assert benchmark_chains() <= chains_before, "workload G left host firewall chains"
