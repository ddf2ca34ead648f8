"""Run the benchmark workloads, check peers agree, write results.json, results.md and plots."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path

WORKLOAD_IDS = ("a", "b", "c", "d", "e", "f", "g", "h")
EXIT_DISAGREEMENT = 1
EXIT_ERROR = 2


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command line: scale, which workloads, thread count and output folder."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--scale", choices=("ci", "full"), default="ci")
    parser.add_argument("--only", default="",
                        help="comma-separated workload ids (default: every workload present)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def selected_ids(only: str) -> list[str]:
    """Workload ids to run: those named by --only, else every workload module that exists."""
    if only.strip():
        ids = [part.strip().lower() for part in only.split(",") if part.strip()]
        unknown = [i for i in ids if i not in WORKLOAD_IDS]
        if unknown:
            raise SystemExit(f"--only: unknown workload id(s) {unknown}; known: {WORKLOAD_IDS}")
        return ids
    here = Path(__file__).parent
    return [i for i in WORKLOAD_IDS if (here / f"workload_{i}.py").exists()]


def set_thread_environment(threads: int) -> None:
    """Give every peer the same thread count, before any of them is imported."""
    for name in ("NUMBA_NUM_THREADS", "POLARS_MAX_THREADS", "OMP_NUM_THREADS",
                 "RAYON_NUM_THREADS"):
        os.environ[name] = str(threads)


def main(argv: list[str] | None = None) -> int:
    """Run the selected workloads; exit 1 if a peer disagreed, 2 if a workload failed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    set_thread_environment(args.threads)
    from benchmarks import harness

    args.out.mkdir(parents=True, exist_ok=True)
    harness.set_artifact_dir(args.out)
    results: dict = {"scale": args.scale,
                     "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None
                                                                     else argv),
                     "environment": harness.environment(args.threads), "workloads": []}
    status = 0
    for wid in selected_ids(args.only):
        print(f"[benchmarks] workload {wid.upper()} at {args.scale} scale, "
              f"{args.threads} threads", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.workload_{wid}")
            outcome = module.run(args.scale, args.threads)
        except harness.Disagreement as exc:
            print(f"[benchmarks] {wid.upper()}: PEERS DISAGREE: {exc}", file=sys.stderr)
            outcome = {"workload": wid.upper(), "error": f"Disagreement: {exc}"}
            status = max(status, EXIT_DISAGREEMENT) if status != EXIT_ERROR else status
        except Exception as exc:  # a failing workload is reported, the others still run
            traceback.print_exc()
            outcome = {"workload": wid.upper(), "error": f"{type(exc).__name__}: {exc}"}
            status = EXIT_ERROR
        results["workloads"].append(outcome)
        harness.write_json(args.out / "results.json", results)
    results["peak_rss_mib"] = harness.peak_rss_mib()
    harness.write_json(args.out / "results.json", results)
    (args.out / "results.md").write_text(harness.markdown_report(results))
    harness.plot_goal_ratios(results, args.out / "ratios.png")
    print((args.out / "results.md").read_text())
    return status


if __name__ == "__main__":
    sys.exit(main())
