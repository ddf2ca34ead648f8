"""The benchmark harness's method: round-robin timing, quiet-machine refusal, break-even."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from benchmarks import harness
from benchmarks.__main__ import EXIT_BUSY, write_results_md
from benchmarks.workload_a import break_even


def _results(start_load: float, foreign: float) -> dict:
    env = {"cpu_model": "cpu", "cores": 2, "threads": 2, "python": "3.11", "versions": {}}
    return {"scale": "full", "command": "python -m benchmarks --scale full", "environment": env,
            "load_avg_start": [start_load, 0.0, 0.0],
            "workloads": [{"workload": "A", "load": {"foreign_cpu_cores": foreign},
                           "goals": [harness.goal("x", 2.0, 1.0)], "rows": []}]}


def test_interleave_runs_round_robin_each_short_call_primed_and_summarises():
    calls = []
    timing = harness.interleave({"a": lambda: calls.append("a"),
                                 "b": lambda: (calls.append("b"), time.sleep(0.002))}, 3)
    assert calls == ["a", "a", "b", "b"] * 3
    assert timing["b"]["repeats"] == 3 and timing["b"]["min_s"] >= 0.002
    assert timing["b"]["min_s"] <= timing["b"]["median_s"] and timing["b"]["iqr_s"] >= 0


def test_interleave_primes_a_long_call_only_until_its_length_is_known():
    calls = []
    harness.interleave({"short": lambda: calls.append("short"),
                        "long": lambda: (calls.append("long"), time.sleep(0.003))}, 3,
                       prime_below_s=0.001)
    assert calls == ["short", "short", "long", "long"] + ["short", "short", "long"] * 2


def test_interleave_without_priming_makes_only_the_timed_calls():
    calls = []
    harness.interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 2,
                       prime_below_s=0.0)
    assert calls == ["a", "b"] * 2


@pytest.mark.parametrize(("start_load", "foreign", "quiet"),
                         [(0.1, 0.1, True), (harness.LOAD_LIMIT + 0.1, 0.0, False),
                          (0.1, harness.FOREIGN_CPU_LIMIT + 0.1, False)])
def test_quiet_enough_reads_start_load_and_other_processes(start_load, foreign, quiet):
    assert (harness.quiet_enough(_results(start_load, foreign)) is None) is quiet


def test_busy_run_refuses_results_md_unless_forced(tmp_path, capsys):
    busy = _results(0.1, 1.5)
    target = tmp_path / "RESULTS.md"
    assert write_results_md(busy, tmp_path, target, force_busy=False) == EXIT_BUSY
    assert not target.exists()
    assert "--force-busy" in capsys.readouterr().err
    assert write_results_md(busy, tmp_path, target, force_busy=True) == 0
    assert "measured under load 1.50" in target.read_text()


def test_quiet_run_writes_results_md_from_results_without_stamp(tmp_path):
    target = tmp_path / "RESULTS.md"
    assert write_results_md(_results(0.1, 0.1), tmp_path, target, force_busy=False) == 0
    text = target.read_text()
    assert "measured under load" not in text and "| A | x | 2 | 1 | yes |" in text


def test_load_watch_counts_other_processes_not_this_one():
    watch = harness.LoadWatch(np.ones(1 << 20))
    busy_before, wall_before = harness._cpu_seconds()[0], time.monotonic()
    own_before = harness._own_cpu_seconds()
    watch.start()
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # this process keeps one core busy: not foreign
        pass
    load = watch.stop()
    wall = time.monotonic() - wall_before
    all_cores = (harness._cpu_seconds()[0] - busy_before) / wall
    own_cores = (harness._own_cpu_seconds() - own_before) / wall
    assert own_cores > 0.02  # the machine may be shared: this process gets what it gets
    assert abs(all_cores - load["foreign_cpu_cores"] - own_cores) < 0.5 * own_cores + 0.02
    assert len(load["load_avg_start"]) == 3
    assert 0 <= load["steal_cores"] <= (harness.os.cpu_count() or 1) + 0.2
    assert load["read_gbs_before"] > 0 and load["read_gbs_after"] > 0
    json.dumps(load)


def test_steal_time_makes_the_run_busy():
    """The host taking this machine's CPUs shows as steal, not as load or other processes."""
    results = _results(0.1, 0.0)
    results["workloads"][0]["load"]["steal_cores"] = harness.STEAL_LIMIT + 0.01
    assert "steal time) during workload A" in harness.quiet_enough(results)


@pytest.mark.parametrize(("probes", "quiet"),
                         [((10.0, 9.0, 9.5, 8.5), True), ((10.0, 9.0, 7.9, 9.5), False),
                          ((10.0, 10.0, 10.0, 7.0), False)])
def test_a_bandwidth_probe_far_under_the_runs_best_makes_the_run_busy(probes, quiet):
    """Another guest taking memory bandwidth shows as no load here, only in the probes."""
    results = _results(0.1, 0.0)
    second = json.loads(json.dumps(results["workloads"][0]))
    second["workload"] = "B"
    results["workloads"].append(second)
    for wl, (before, after) in zip(results["workloads"], (probes[:2], probes[2:]), strict=True):
        wl["load"].update(read_gbs_before=before, read_gbs_after=after)
    reason = harness.quiet_enough(results)
    assert (reason is None) is quiet
    if not quiet:
        assert f"{min(probes):.1f} GB/s" in reason and "best probe (10.0 GB/s)" in reason


def test_read_bandwidth_is_the_probe_size_over_its_fastest_read():
    probe = np.ones(1 << 22)
    start = time.perf_counter()
    gbs = harness.read_bandwidth_gbs(probe, tries=1)
    assert probe.nbytes / (time.perf_counter() - start) / 1e9 <= gbs < 1000


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parallel_read_bandwidth_is_the_array_size_over_its_fastest_read(threads):
    array = np.ones((1 << 11, 1 << 10) if threads < 3 else (1 << 21) + 1)
    start = time.perf_counter()
    gbs = harness.parallel_read_gbs(array, threads, tries=1)
    assert array.nbytes / (time.perf_counter() - start) / 1e9 <= gbs < 10_000


@pytest.mark.parametrize(("args", "expected"),
                         [((10.0, 1.0, 2.0, 3.0), 4.0), ((1.0, 1.0, 2.0, 3.0), 0.0),
                          ((10.0, 3.0, 2.0, 1.0), None)])
def test_break_even_query_count(args, expected):
    assert break_even(*args) == expected


def test_engine_workload_is_judged_on_its_idle_presample():
    """Workload G's containers run outside the process: their CPU does not make the run busy,
    but other processes' CPU just before it does."""
    results = _results(0.1, 1.8)
    results["workloads"][0]["load"]["foreign_cpu_cores_before"] = 0.05
    assert harness.quiet_enough(results) is None
    results["workloads"][0]["load"]["foreign_cpu_cores_before"] = harness.FOREIGN_CPU_LIMIT + 0.1
    assert "just before workload A" in harness.quiet_enough(results)


def test_load_watch_presample_records_other_processes_before_the_workload():
    watch = harness.LoadWatch(np.ones(1 << 20))
    watch.start(presample_s=0.3)
    load = watch.stop()
    # /proc/stat ticks and wall time are read apart: allow a tick's worth over the core count
    assert 0 <= load["foreign_cpu_cores_before"] <= (harness.os.cpu_count() or 1) + 0.2
    assert "foreign_cpu_cores" in load


def test_closing_probe_waits_for_other_processes_to_settle():
    """An engine workload's teardown (here a child spinning for 1.5 s) must not be probed."""
    watch = harness.LoadWatch(np.ones(1 << 20))
    watch.start()
    spinner = subprocess.Popen([sys.executable, "-c",
                                "import time\nend = time.monotonic() + 1.5\n"
                                "while time.monotonic() < end: pass"])
    try:
        load = watch.stop(settle_s=20.0)
    finally:
        spinner.wait()
    assert 1.0 <= load["settled_s"] <= 25.0  # 20 s, one sample and the flush
    assert load["read_gbs_after"] > 0
    assert "settled_s" not in watch.stop()


_ENGINE_RUN = """
import sys, types
from benchmarks import __main__ as bench
fake = types.ModuleType("benchmarks.workload_g")  # found in sys.modules: the real G never runs
fake.RUNS_IN_ENGINE = True
fake.run = lambda scale, threads: {"workload": "G", "title": "engine", "scale": scale,
                                   "rows": [], "goals": []}
sys.modules[fake.__name__] = fake
bench.ENGINE_PRESAMPLE_S, bench.ENGINE_SETTLE_S = 0.2, 5.0
sys.exit(bench.main(["--scale", "ci", "--only", "g", "--out", sys.argv[1]]))
"""


def test_main_presamples_an_engine_workload_and_settles_before_its_closing_probe(tmp_path):
    """The run loop gives a RUNS_IN_ENGINE workload (G) its idle pre-sample and settled probe."""
    done = subprocess.run([sys.executable, "-c", _ENGINE_RUN, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    load = json.loads((tmp_path / "results.json").read_text())["workloads"][0]["load"]
    assert load["foreign_cpu_cores_before"] >= 0
    assert 0 < load["settled_s"] <= 10.0 and load["read_gbs_after"] > 0
