"""Shared helpers for the benchmark workloads: timing, agreement checks, results and reports."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

WARM_REPEATS = 5
_ARTIFACT_DIR_ENV = "LNDS_BENCH_OUT"


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


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def row(case: str, impl: str, cold_s: float | None, warm_s: float, **extra: Any) -> dict:
    """One measured line of a workload's results, with peak RSS recorded at this point."""
    extra.setdefault("peak_rss_mib", round(peak_rss_mib(), 1))
    return {"case": case, "impl": impl, "cold_s": cold_s, "warm_s": warm_s, "extra": extra}


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


def markdown_report(results: dict) -> str:
    """Render results.json content as Markdown: machine facts, goals, then all timings."""
    env = results["environment"]
    lines = [f"# Benchmark results ({results['scale']} scale)", "",
             f"Command: `{results['command']}`", "",
             f"CPU: {env['cpu_model']}, {env['cores']} cores, {env['threads']} threads; "
             f"Python {env['python']}", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v), "",
             "## Goals", "", "| workload | goal | ratio | target | met |", "|---|---|---|---|---|"]
    for wl in results["workloads"]:
        for g in wl.get("goals", []):
            lines.append(f"| {wl['workload']} | {g['goal']} | {g['ratio']:.3g} | "
                         f"{g['target']:.3g} | {'yes' if g['met'] else '**no**'} |")
    lines += ["", "## Timings", "", "| workload | case | impl | cold | warm | notes |",
              "|---|---|---|---|---|---|"]
    for wl in results["workloads"]:
        if "error" in wl:
            lines.append(f"| {wl['workload']} | – | – | – | – | **{wl['error']}** |")
            continue
        for r in wl.get("rows", []):
            notes = ", ".join(f"{k}={v}" for k, v in r.get("extra", {}).items())
            lines.append(f"| {wl['workload']} | {r['case']} | {r['impl']} | "
                         f"{_fmt_seconds(r['cold_s'])} | {_fmt_seconds(r['warm_s'])} | {notes} |")
    return "\n".join(lines) + "\n"


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
