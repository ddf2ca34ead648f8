"""One implementation's first call in a fresh process: `python -m benchmarks.probe WORKLOAD
SCALE THREADS NAME` builds the workload's probe input (untimed), times the first and second
call, and prints JSON with both times and the peak memory the call added over its input."""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path


def _status_mib(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(argv: list[str]) -> None:
    """Build the probes, reset the peak-RSS mark, time the named one twice, print JSON."""
    workload, scale, threads, name = argv
    module = importlib.import_module(f"benchmarks.workload_{workload.lower()}")
    fns = module.probes(scale, int(threads), name)
    if name not in fns:
        raise SystemExit(f"workload {workload} has no probe {name!r}; it has {sorted(fns)}")
    Path("/proc/self/clear_refs").write_text("5")  # the peak mark restarts at the current RSS
    before = _status_mib("VmRSS")
    start = time.perf_counter()
    fns[name]()
    first = time.perf_counter() - start
    peak = _status_mib("VmHWM") - before
    start = time.perf_counter()
    fns[name]()
    second = time.perf_counter() - start
    print(json.dumps({"first_s": first, "second_s": second, "peak_mib": round(peak, 1),
                      "input_mib": round(before, 1)}))


if __name__ == "__main__":
    main(sys.argv[1:])
