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
EXIT_BUSY = 3
RESULTS_MD = Path(__file__).parent / "RESULTS.md"
# A workload run in the container engine is judged on an idle pre-sample of this many seconds,
# and its closing bandwidth probe waits up to ENGINE_SETTLE_S for its containers' teardown.
ENGINE_PRESAMPLE_S = 3.0
ENGINE_SETTLE_S = 60.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command line: scale, which workloads, thread count and output folder."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--scale", choices=("ci", "full"), default="ci")
    parser.add_argument("--only", default="",
                        help="comma-separated workload ids (default: every workload present)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--results", type=Path, default=None,
                        help="RESULTS.md to write from results.json (default at full scale: "
                             "benchmarks/RESULTS.md; at ci scale none)")
    parser.add_argument("--force-busy", action="store_true",
                        help="write RESULTS.md even when the machine was busy, stamped with the load")
    args = parser.parse_args(argv)
    if args.results is None and args.scale == "full":
        args.results = RESULTS_MD
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


def write_results_md(results: dict, out: Path, target: Path, force_busy: bool) -> int:
    """RESULTS.md from results.json and its plots; EXIT_BUSY (nothing written) on a busy run."""
    from benchmarks import harness

    allowed, stamp = harness.results_stamp(results, force_busy)
    if not allowed:
        print(f"[benchmarks] RESULTS.md not written: the machine was busy: {stamp}. Re-run on a "
              "quiet machine, or pass --force-busy to write it stamped with the load.",
              file=sys.stderr)
        return EXIT_BUSY
    target.parent.mkdir(parents=True, exist_ok=True)
    plots = []
    for picture in sorted(out.glob("*.png")):
        copy = target.parent / f"results-{picture.name}"
        copy.write_bytes(picture.read_bytes())
        plots.append(copy.name)
    tmp = target.with_suffix(".md.tmp")
    tmp.write_text(harness.markdown_report({**results, "plots": plots}, stamp))
    tmp.replace(target)
    print(f"[benchmarks] wrote {target}" + (f" ({stamp})" if stamp else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the selected workloads; exit 1 if a peer disagreed, 2 if a workload failed, 3 if
    RESULTS.md was asked for but the machine was busy."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    set_thread_environment(args.threads)
    from benchmarks import harness

    args.out.mkdir(parents=True, exist_ok=True)
    harness.set_artifact_dir(args.out)
    results: dict = {"scale": args.scale,
                     "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None
                                                                     else argv),
                     "environment": harness.environment(args.threads),
                     "load_avg_start": [round(x, 2) for x in os.getloadavg()], "workloads": []}
    status = 0
    probe = harness.bandwidth_probe()
    for wid in selected_ids(args.only):
        print(f"[benchmarks] workload {wid.upper()} at {args.scale} scale, "
              f"{args.threads} threads", flush=True)
        watch = harness.LoadWatch(probe)
        watch.start()
        in_engine = False
        try:
            module = importlib.import_module(f"benchmarks.workload_{wid}")
            in_engine = getattr(module, "RUNS_IN_ENGINE", False)
            if in_engine:                        # its containers' CPU is not ours: quiet is
                watch.start(ENGINE_PRESAMPLE_S)  # judged on an idle pre-sample
            outcome = module.run(args.scale, args.threads)
        except harness.Disagreement as exc:
            print(f"[benchmarks] {wid.upper()}: PEERS DISAGREE: {exc}", file=sys.stderr)
            outcome = {"workload": wid.upper(), "error": f"Disagreement: {exc}"}
            status = max(status, EXIT_DISAGREEMENT) if status != EXIT_ERROR else status
        except Exception as exc:  # a failing workload is reported, the others still run
            traceback.print_exc()
            outcome = {"workload": wid.upper(), "error": f"{type(exc).__name__}: {exc}"}
            status = EXIT_ERROR
        outcome["load"] = watch.stop(ENGINE_SETTLE_S if in_engine else 0.0)
        results["workloads"].append(outcome)
        harness.write_json(args.out / "results.json", results)
    results["peak_rss_mib"] = harness.peak_rss_mib()
    harness.write_json(args.out / "results.json", results)
    (args.out / "results.md").write_text(harness.markdown_report(results))
    harness.plot_goal_ratios(results, args.out / "ratios.png")
    print((args.out / "results.md").read_text())
    if args.results is not None and status == 0:
        status = write_results_md(results, args.out, args.results, args.force_busy)
    return status


if __name__ == "__main__":
    sys.exit(main())
