"""Shared helpers for the benchmark workloads: timing, agreement checks, results and reports.

Method: implementations are timed round-robin (`interleave`), so a burst of load hits all of
them alike; each row reports min, median and IQR over the repeats and the thread count it ran
with. Cold starts and peak memory come from fresh processes (`fresh_process_probes`): the first
call once with an empty NUMBA_CACHE_DIR and once with that cache warm. Every workload records
the load average, the CPU that other processes used while it ran, the CPU the host took from
this virtual machine (steal time) and the memory read bandwidth probed just before and after it;
`quiet_enough` decides whether the run may be written to RESULTS.md (the probe after a workload
whose containers ran in the engine waits for their teardown first). The probes exist because
another guest on the same host can take memory bandwidth, which shows as no load inside this
one: in one run workload A's bandwidth-bound scans were 30–80% slower than in every other run,
while its compute-bound peers were not.

A timed call under PRIME_BELOW_S follows an untimed call of the same implementation. On a
virtual machine the first touch of memory after another implementation's allocation churn can
cost microseconds per page (the cause was not found from inside the guest): measured here, the
per-series query right after the pandas query took 41–50 ms in 6 of 8 rounds and 1.3–2 ms on
its next call. So a call is not billed for its predecessor's memory traffic; in a longer call
such a stall is a few percent and is kept as measured.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

WARM_REPEATS = 5
REPEATS = {"ci": 3, "full": 10}
# A run is quiet when other processes used at most this many cores on average during every
# workload, and the 1-minute load average was at most LOAD_LIMIT when the run started.
FOREIGN_CPU_LIMIT = 0.25
LOAD_LIMIT = 0.5
# ... and the host took at most STEAL_LIMIT cores (steal time) during every workload, and no
# bandwidth probe read less than BANDWIDTH_FLOOR times the run's best probe.
STEAL_LIMIT = 0.05
BANDWIDTH_FLOOR = 0.8
PROBE_MIB = 256
_ARTIFACT_DIR_ENV = "LNDS_BENCH_OUT"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
PRIME_BELOW_S = 2.0


class Disagreement(Exception):
    """A peer returned a different answer from ours: the run is invalid and must fail."""


def time_cold_warm(fn: Callable[[], Any], repeats: int = WARM_REPEATS) -> tuple[float, float]:
    """Time the first call (cold: compile or cache load) and the median of `repeats` warm calls."""
    start = time.perf_counter()
    fn()
    cold = time.perf_counter() - start
    return cold, time_warm(fn, repeats)


def time_warm(fn: Callable[[], Any], repeats: int = WARM_REPEATS) -> float:
    """Median wall time of `repeats` calls, for peers whose first call was already made."""
    samples = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time and result of one call, for one-off costs such as building an index."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def repeats_for(scale: str) -> int:
    """Round-robin repeats at a scale: 10 at full scale, fewer at ci scale."""
    return REPEATS[scale]


def summarise(samples: list[float]) -> dict:
    """Min, median, quartiles and IQR of wall times (seconds)."""
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    return {"min_s": float(min(samples)), "median_s": float(median), "q1_s": float(q1),
            "q3_s": float(q3), "iqr_s": float(q3 - q1), "repeats": len(samples)}


def interleave(impls: dict[str, Callable[[], Any]], repeats: int,
               prime_below_s: float = PRIME_BELOW_S) -> dict[str, dict]:
    """Time every implementation `repeats` times, round-robin (one timed call of each per
    round), each call shorter than `prime_below_s` right after an untimed call of its own."""
    samples: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(max(repeats, 1)):
        for name, fn in impls.items():
            if primed(samples[name], prime_below_s):
                fn()
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: summarise(times) for name, times in samples.items()}


def primed(earlier_samples: list[float], below_s: float) -> bool:
    """Whether the next timed call gets an untimed call first: when priming is on (below_s > 0)
    and the call is short (its last one took under below_s) or its length is not known yet."""
    return below_s > 0 and (not earlier_samples or earlier_samples[-1] < below_s)


def timed_row(case: str, impl: str, timing: dict, threads: int, probe: dict | None = None,
              **extra: Any) -> dict:
    """A row from an `interleave` summary: median as warm, the thread count, load now, and the
    fresh-process cold times and peak memory when a probe measured this implementation."""
    probe = probe or {}
    return {"case": case, "impl": impl, "threads": threads,
            "cold_s": probe.get("cold_warm_cache_s"),
            "cold_empty_cache_s": probe.get("cold_empty_cache_s"),
            "warm_s": timing["median_s"], **{k: timing[k] for k in ("min_s", "iqr_s", "repeats")},
            "own_process_peak_mib": probe.get("peak_mib"),
            "load_avg_1min": round(os.getloadavg()[0], 2), "extra": extra}


class LoadWatch:
    """CPU used by other processes (cores, averaged) between start() and stop(), from
    /proc/stat's busy time minus this process's and its waited children's CPU time; the steal
    time in cores over the same span; and the memory read bandwidth just before and after.

    A workload whose own work runs outside this process (containers started through an engine)
    is watched with `presample_s`: other processes' CPU is then also measured over that many
    idle seconds before it starts, and that figure decides whether the machine was quiet."""

    def __init__(self, probe: np.ndarray) -> None:
        self.probe = probe

    def start(self, presample_s: float = 0.0) -> None:
        self.read_gbs_before = read_bandwidth_gbs(self.probe)
        self.foreign_before = None
        if presample_s > 0:
            self.foreign_before = self._foreign_cores_over(presample_s)
        self._mark()
        self.load_at_start = os.getloadavg()

    def _mark(self) -> None:
        self._busy, self._steal = _cpu_seconds()
        self._own, self._wall = _own_cpu_seconds(), time.monotonic()

    def _foreign_cores_over(self, seconds: float) -> float:
        """Other processes' CPU (cores) over the next `seconds` (this watch's mark moves)."""
        self._mark()
        time.sleep(seconds)
        return self._foreign_cores()

    def _foreign_cores(self) -> float:
        wall = max(time.monotonic() - self._wall, 1e-9)
        foreign = (_cpu_seconds()[0] - self._busy) - (_own_cpu_seconds() - self._own)
        return round(max(foreign, 0.0) / wall, 3)

    def stop(self, settle_s: float = 0.0) -> dict:
        """What the workload saw. With `settle_s` (a workload whose work ran in other processes),
        the closing bandwidth probe first waits, up to that long, for those processes to finish:
        dirty pages written back and other processes' CPU under FOREIGN_CPU_LIMIT, so the probe
        reads the host, not the workload's own teardown."""
        wall = max(time.monotonic() - self._wall, 1e-9)
        found = {"load_avg_start": [round(x, 2) for x in self.load_at_start],
                 "load_avg_end": [round(x, 2) for x in os.getloadavg()],
                 "foreign_cpu_cores": self._foreign_cores(),
                 "steal_cores": round((_cpu_seconds()[1] - self._steal) / wall, 3),
                 "read_gbs_before": self.read_gbs_before}
        if settle_s > 0:
            found["settled_s"] = self._settle(settle_s)
        found["read_gbs_after"] = read_bandwidth_gbs(self.probe)
        if self.foreign_before is not None:
            found["foreign_cpu_cores_before"] = self.foreign_before
        return found

    def _settle(self, limit_s: float, sample_s: float = 1.0) -> float:
        """Flush dirty pages, then wait until other processes use at most FOREIGN_CPU_LIMIT
        cores over `sample_s`, or `limit_s` passed; the seconds it took."""
        began = time.monotonic()
        os.sync()
        while time.monotonic() - began < limit_s:
            if self._foreign_cores_over(sample_s) <= FOREIGN_CPU_LIMIT:
                break
        return round(time.monotonic() - began, 1)


def bandwidth_probe() -> np.ndarray:
    """The buffer the bandwidth probes read: PROBE_MIB of float64, touched once."""
    return np.ones(PROBE_MIB << 17)


def read_bandwidth_gbs(probe: np.ndarray, tries: int = 3) -> float:
    """Memory read bandwidth one core gets now, GB/s: the best of `tries` reads of `probe`."""
    return parallel_read_gbs(probe, 1, tries)


def parallel_read_gbs(array: np.ndarray, threads: int, tries: int = 3) -> float:
    """Memory read bandwidth `threads` threads get together now, GB/s: the best of `tries`
    reads of `array`, split into one contiguous share per thread (numpy's max runs without
    the GIL). Read an array well past the last-level cache, or this measures the cache."""
    from concurrent.futures import ThreadPoolExecutor

    flat = array.reshape(-1)
    shares = np.array_split(flat, threads)
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(tries):
            start = time.perf_counter()
            list(pool.map(np.max, shares))
            best = min(best, time.perf_counter() - start)
    return round(flat.nbytes / best / 1e9, 2)


def foreign_cores_judged(load: dict) -> float:
    """Other processes' CPU that decides quietness: the idle pre-sample when the workload had
    one (its own work runs in other processes), else what they used while it ran."""
    return load.get("foreign_cpu_cores_before", load.get("foreign_cpu_cores", 0.0))


def _cpu_seconds() -> tuple[float, float]:
    """Seconds every CPU spent busy (user, nice, system, irq, softirq) since boot, and the
    seconds the host took from them (steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq) / _CLK_TCK, steal / _CLK_TCK


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def quiet_enough(results: dict) -> str | None:
    """Why the run is too busy for RESULTS.md (None when quiet): load at the start above
    LOAD_LIMIT, other processes above FOREIGN_CPU_LIMIT cores or steal above STEAL_LIMIT during
    any workload, or a bandwidth probe under BANDWIDTH_FLOOR times the run's best."""
    start_load = results.get("load_avg_start", [0.0])[0]
    if start_load > LOAD_LIMIT:
        return f"1-minute load average {start_load:.2f} at the start (limit {LOAD_LIMIT})"
    for wl in results["workloads"]:
        load = wl.get("load", {})
        foreign = foreign_cores_judged(load)
        if foreign > FOREIGN_CPU_LIMIT:
            when = "just before" if "foreign_cpu_cores_before" in load else "during"
            return (f"other processes used {foreign:.2f} cores {when} workload "
                    f"{wl['workload']} (limit {FOREIGN_CPU_LIMIT})")
        if load.get("steal_cores", 0.0) > STEAL_LIMIT:
            return (f"the host took {load['steal_cores']:.2f} cores from this machine (steal "
                    f"time) during workload {wl['workload']} (limit {STEAL_LIMIT})")
    probes = [(load[key], when, wl["workload"]) for wl in results["workloads"]
              for load in [wl.get("load", {})]
              for key, when in (("read_gbs_before", "before"), ("read_gbs_after", "after"))
              if key in load]
    if probes:
        best = max(gbs for gbs, _, _ in probes)
        gbs, when, workload = min(probes)
        if gbs < BANDWIDTH_FLOOR * best:
            return (f"memory read bandwidth was {gbs:.1f} GB/s {when} workload {workload}, "
                    f"under {BANDWIDTH_FLOOR}× the run's best probe ({best:.1f} GB/s)")
    return None


def busiest_load(results: dict) -> float:
    """The highest load seen: start load average or any workload's foreign CPU, in cores."""
    loads = [results.get("load_avg_start", [0.0])[0]]
    loads += [foreign_cores_judged(wl.get("load", {})) for wl in results["workloads"]]
    return max(loads)


def fresh_process_probes(workload: str, scale: str, threads: int,
                         names: Iterable[str]) -> dict[str, dict]:
    """For each named implementation of a workload's `probes`, two fresh processes: the first
    call with an empty NUMBA_CACHE_DIR, then with the cache that run filled; the peak memory
    the call added (own process, after the input was built) comes from the warm-cache run."""
    found = {}
    for name in names:
        with tempfile.TemporaryDirectory(prefix="spe-bench-numba-") as cache:
            empty = _probe(workload, scale, threads, name, cache)
            warm = _probe(workload, scale, threads, name, cache)
        found[name] = {"cold_empty_cache_s": empty["first_s"],
                       "cold_warm_cache_s": warm["first_s"], "second_call_s": warm["second_s"],
                       "peak_mib": warm["peak_mib"]}
    return found


def probe_names(scale: str, names: Iterable[str]) -> list[str]:
    """Which implementations get fresh-process probes: all at full scale; at ci scale only the
    first (ours), to keep CI short."""
    names = list(names)
    return names if scale == "full" else names[:1]


def _probe(workload: str, scale: str, threads: int, name: str, cache: str) -> dict:
    """Run benchmarks.probe in a fresh interpreter; its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.probe", workload, scale, str(threads), name],
        capture_output=True, text=True, check=False, env={**os.environ, "NUMBA_CACHE_DIR": cache},
        cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"probe {workload}/{name} failed: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def row(case: str, impl: str, cold_s: float | None, warm_s: float, threads: int | None = None,
        **extra: Any) -> dict:
    """One measured line of a workload's results (one-off or externally timed), with its
    thread count. Peak memory is not added: this process's high-water mark is the largest of
    every workload run before, so it says nothing of this row (probes measure memory)."""
    return {"case": case, "impl": impl, "threads": threads, "cold_s": cold_s, "warm_s": warm_s,
            "load_avg_1min": round(os.getloadavg()[0], 2), "extra": extra}


def goal(text: str, ratio: float, target: float) -> dict:
    """A goal line: ratio = peer time / our time (or the quantity named in the text) vs target."""
    return {"goal": text, "ratio": float(ratio), "target": float(target),
            "met": bool(ratio >= target)}


def goal_at_most(text: str, value: float, limit: float) -> dict:
    """A '<=' goal on an absolute quantity (e.g. milliseconds): met when value <= limit."""
    return {"goal": f"{text} (<= goal: value must not exceed target)", "ratio": float(value),
            "target": float(limit), "met": bool(value <= limit)}


def check_close(what: str, ours: Any, theirs: Any, rtol: float = 1e-9,
                atol: float = 1e-9) -> None:
    """Raise Disagreement unless the two answers are equal within tolerance (NaNs equal)."""
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        raise Disagreement(f"{what}: shapes differ, ours {a.shape} vs peer {b.shape}")
    if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
        bad = ~np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        first = np.argwhere(bad)[0]
        raise Disagreement(f"{what}: {int(bad.sum())} values differ, first at {tuple(first)}: "
                           f"ours {a[tuple(first)]!r} vs peer {b[tuple(first)]!r}")


def check_equal(what: str, ours: Any, theirs: Any) -> None:
    """Raise Disagreement unless the two arrays (e.g. masks, index pairs) are identical."""
    a = np.asarray(ours)
    b = np.asarray(theirs)
    if a.shape != b.shape or not np.array_equal(a, b):
        raise Disagreement(f"{what}: results differ (ours shape {a.shape}, peer {b.shape})")


def artifact_path(name: str) -> Path | None:
    """Where a workload may write a picture for the report, or None outside a runner."""
    folder = os.environ.get(_ARTIFACT_DIR_ENV)
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / name


def set_artifact_dir(folder: Path) -> None:
    """Tell workloads (via the environment) where to write their pictures."""
    os.environ[_ARTIFACT_DIR_ENV] = str(folder)


def cpu_model() -> str:
    """The CPU model name as the kernel reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed versions of the named distributions (None when absent)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def environment(threads: int) -> dict:
    """Machine facts to record next to the numbers: CPU, cores, threads, versions."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": package_versions(["numpy", "numba", "llvmlite", "pandas", "pyarrow", "duckdb",
                                      "polars", "scipy", "anonlink", "acro", "crypt4gh"]),
        "env": {k: os.environ.get(k) for k in ("NUMBA_NUM_THREADS", "POLARS_MAX_THREADS",
                                                "NUMBA_CACHE_DIR", "OPENBLAS_CORETYPE")},
    }


def _fmt_seconds(value: float | None) -> str:
    """Seconds as a short human string in ms or s."""
    if value is None:
        return "–"
    return f"{value * 1e3:.2f} ms" if value < 1 else f"{value:.2f} s"


def _fmt(value: Any) -> str:
    """A plain value for a table cell; – when absent."""
    return "–" if value is None else str(value)


def markdown_report(results: dict, stamp: str | None = None) -> str:
    """Render results.json content as Markdown: command, machine, versions, load, goals with
    met/not and ratio, then every row with min/median/IQR, threads, cold starts and memory."""
    env = results["environment"]
    lines = [f"# Benchmark results ({results['scale']} scale)", "",
             "Written by `python -m benchmarks` from results.json; do not edit by hand.", ""]
    if stamp:
        lines += [f"**{stamp}**", ""]
    lines += [f"Command: `{results['command']}`", "",
              f"CPU: {env['cpu_model']}, {env['cores']} cores, {env['threads']} threads; "
              f"Python {env['python']}", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v), "",
              f"Load average at the start: {results.get('load_avg_start')}; quiet means at most "
              f"{LOAD_LIMIT} then, and during each workload at most {FOREIGN_CPU_LIMIT} cores "
              f"used by other processes and {STEAL_LIMIT} taken by the host (steal), and every "
              f"memory read probe ({PROBE_MIB} MiB, one core) at least {BANDWIDTH_FLOOR}× the "
              "run's best (after a workload run in the container engine, once its teardown "
              "settled).", "",
              "Method: implementations timed round-robin; min, median and IQR over the repeats; "
              "cold = first call in a fresh process with an empty / a warm NUMBA_CACHE_DIR; "
              "peak MiB = memory the first call added in its own process (probe input); a "
              f"timed call under {PRIME_BELOW_S:g} s follows an untimed call of the same "
              "implementation, so it is not billed for the previous one's memory traffic "
              "(see benchmarks/harness.py).", "",
              "## Goals", "", "| workload | goal | ratio | target | met |", "|---|---|---|---|---|"]
    for wl in results["workloads"]:
        for g in wl.get("goals", []):
            lines.append(f"| {wl['workload']} | {g['goal']} | {g['ratio']:.3g} | "
                         f"{g['target']:.3g} | {'yes' if g['met'] else '**no**'} |")
    lines += ["", "## Load per workload", "",
              "| workload | load avg at start | at end | other processes (cores) | "
              "before it, idle | steal (cores) | read GB/s before | after |",
              "|---|---|---|---|---|---|---|---|"]
    for wl in results["workloads"]:
        load = wl.get("load", {})
        lines.append(f"| {wl['workload']} | {_fmt(load.get('load_avg_start'))} | "
                     f"{_fmt(load.get('load_avg_end'))} | {_fmt(load.get('foreign_cpu_cores'))} | "
                     f"{_fmt(load.get('foreign_cpu_cores_before'))} | "
                     f"{_fmt(load.get('steal_cores'))} | {_fmt(load.get('read_gbs_before'))} | "
                     f"{_fmt(load.get('read_gbs_after'))} |")
    lines += ["", "## Timings", "",
              "| workload | case | impl | threads | cold, empty cache | cold, warm cache | min | "
              "median | IQR | peak MiB | load | notes |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for wl in results["workloads"]:
        if "error" in wl:
            lines.append(f"| {wl['workload']} | – | – | – | – | – | – | – | – | – | – | "
                         f"**{wl['error']}** |")
            continue
        for r in wl.get("rows", []):
            notes = ", ".join(f"{k}={v}" for k, v in r.get("extra", {}).items())
            lines.append(
                f"| {wl['workload']} | {r['case']} | {r['impl']} | {_fmt(r.get('threads'))} | "
                f"{_fmt_seconds(r.get('cold_empty_cache_s'))} | {_fmt_seconds(r['cold_s'])} | "
                f"{_fmt_seconds(r.get('min_s'))} | {_fmt_seconds(r['warm_s'])} | "
                f"{_fmt_seconds(r.get('iqr_s'))} | {_fmt(r.get('own_process_peak_mib'))} | "
                f"{_fmt(r.get('load_avg_1min'))} | {notes} |")
    for picture in results.get("plots", []):
        lines += ["", f"![{picture}]({picture})"]
    return "\n".join(lines) + "\n"


def results_stamp(results: dict, force_busy: bool) -> tuple[bool, str | None]:
    """Whether RESULTS.md may be written, and the stamp it carries: refused when the run was
    busy, unless forced, and then stamped with the load it was measured under."""
    busy = quiet_enough(results)
    if busy is None:
        return True, None
    if not force_busy:
        return False, busy
    return True, f"measured under load {busiest_load(results):.2f} ({busy})"


def write_json(path: Path, content: dict) -> None:
    """Write JSON through a temporary name, then rename, so no half-written file is left."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(content, indent=2, default=float))
    tmp.replace(path)


def plot_goal_ratios(results: dict, path: Path) -> bool:
    """Bar chart of every goal's ratio against its target; False when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    goals = [(wl["workload"], g) for wl in results["workloads"] for g in wl.get("goals", [])
             if "<=" not in g["goal"]]
    if not goals:
        return False
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(goals) + 1.5))
    labels = [f"{w}: {g['goal'][:60]}" for w, g in goals]
    ratios = [g["ratio"] for _, g in goals]
    colours = ["tab:green" if g["met"] else "tab:red" for _, g in goals]
    ys = np.arange(len(goals))
    ax.barh(ys, ratios, color=colours)
    ax.scatter([g["target"] for _, g in goals], ys, marker="|", s=300, color="black",
               label="target")
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("peer time / our time (log)")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
