"""Workload H: pseudonyms per second per core: HMAC and FF1 (IPMS), against named peers."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
from pathlib import Path

from benchmarks import harness

ID = "H"
TITLE = ("IPMS pseudonyms, one thread: HMAC-SHA256 into 13 alphanumerics (batched numba SHA-256); "
         "FF1 on 13-digit numbers")
SCALES = {"ci": (20_000, 2_000), "full": (1_000_000, 100_000)}
LINK_RECORDS = {"ci": 1_000, "full": 5_000}  # per side, from FEBRL4
SCHEMA_PATH = (Path(__file__).resolve().parent.parent / "tests" / "unit" / "pseudonym" / "data"
               / "febrl_schema.json")


CLKHASH_VENV_ENV = "LNDS_CLKHASH_VENV"
CLKHASH_PEER = r"""
import json, sys, time
from clkhash import clk
from clkhash.schema import from_json_dict
from clkhash.serialization import serialize_bitarray
job = json.load(sys.stdin)
schema = from_json_dict(job["schema"])
start = time.perf_counter()
clks = clk.generate_clks(job["records"], schema, bytes.fromhex(job["secret"]), validate=False, max_workers=1)
seconds = time.perf_counter() - start
json.dump({"clks": [serialize_bitarray(c) for c in clks], "seconds": seconds}, sys.stdout)
"""


class PeerMissing(RuntimeError):
    """The clkhash peer virtualenv is absent or failed."""


def clkhash_python() -> Path:
    """Interpreter of the clkhash virtualenv (LNDS_CLKHASH_VENV or .venv-clkhash at the repo root)."""
    root = Path(__file__).resolve().parent.parent
    return Path(os.environ.get(CLKHASH_VENV_ENV, root / ".venv-clkhash")) / "bin" / "python"


def clkhash_encode(schema: dict, secret: bytes, records: list[list[str]]) -> tuple[list[str], float]:
    """clkhash 0.18's base64 CLKs of records (one process, one worker) and its encoding seconds."""
    python = clkhash_python()
    if not python.exists():
        raise PeerMissing(f"the clkhash peer virtualenv is missing ({python}): run "
                          "scripts/setup-linkage-peer.sh")
    job = json.dumps({"schema": schema, "secret": secret.hex(), "records": records})
    done = subprocess.run([str(python), "-c", CLKHASH_PEER], input=job, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise PeerMissing(f"the clkhash peer failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    return out["clks"], out["seconds"]


def run(scale: str, threads: int) -> dict:
    """Time our HMAC and FF1 pseudonyms against a plain stdlib HMAC loop and libffx's FF1."""
    from ffx import FF1

    from lnds_spe.pseudonym.formats import OutputFormat, digest_pseudonym
    from lnds_spe.pseudonym.keystore import derive_key
    from lnds_spe.pseudonym.methods import Pseudonymiser
    from lnds_spe.pseudonym.tokens import ProjectConfig

    n_hmac, n_ff1 = SCALES[scale]
    master = os.urandom(32)
    ids = [f"{1950_01_01_00000 + 7919 * i:013d}" for i in range(n_hmac)]
    hmac_p = Pseudonymiser(ProjectConfig("bench", "non-reversible", "always-same", "alphanumeric"), master)
    key = derive_key(master, "hmac", "bench")

    def stdlib_hmac():
        fmt = OutputFormat.ALPHANUMERIC
        return [digest_pseudonym(hmac.new(key, i.encode(), hashlib.sha256).digest(), fmt) for i in ids]

    inner = hmac.new(key, digestmod=hashlib.sha256)

    def stdlib_pads():
        fmt, out = OutputFormat.ALPHANUMERIC, []
        for i in ids:
            h = inner.copy()
            h.update(i.encode())
            out.append(digest_pseudonym(h.digest(), fmt))
        return out

    harness.check_equal("HMAC pseudonyms", hmac_p.apply(ids), stdlib_hmac())
    harness.check_equal("HMAC pseudonyms (pads)", hmac_p.apply(ids), stdlib_pads())
    ff1_p = Pseudonymiser(ProjectConfig("bench", "reversible", "always-same", "numeric"), master)
    peer_ff1 = FF1(derive_key(master, "ff1", "bench"), radix=10)
    few = ids[:n_ff1]
    harness.check_equal("FF1 pseudonyms", ff1_p.apply(few),
                        [peer_ff1.encrypt(i, tweak=b"bench") for i in few])
    rows, rates = [], {}
    plan = [("HMAC", n_hmac, [("lnds_spe Pseudonymiser (hmac)", lambda: hmac_p.apply(ids)),
                              ("stdlib hmac.new loop", stdlib_hmac),
                              ("stdlib hmac copy of precomputed pads", stdlib_pads)]),
            ("FF1", n_ff1, [("lnds_spe Pseudonymiser (fastfpe FF1)", lambda: ff1_p.apply(few)),
                            ("libffx FF1", lambda: [peer_ff1.encrypt(i, tweak=b"bench") for i in few])])]
    for case, n, cases in plan:
        for fn in dict(cases).values():
            fn()  # first calls (compilation, key schedules) before the round-robin timing
        timing = harness.interleave(dict(cases), harness.repeats_for(scale))
        for impl, stats in timing.items():
            rates[(case, impl)] = n / stats["median_s"]
            rows.append(harness.timed_row(f"{case}, {n:,} identifiers", impl, stats, 1,
                                          per_second=round(rates[(case, impl)])))
    ours_hmac = rates[("HMAC", "lnds_spe Pseudonymiser (hmac)")]
    ours_ff1 = rates[("FF1", "lnds_spe Pseudonymiser (fastfpe FF1)")]
    goals = [harness.goal("HMAC pseudonyms per second per core / 1e6 (goal >= 1)", ours_hmac / 1e6, 1.0),
             harness.goal("FF1 pseudonyms per second per core / 1e5 (goal >= 1)", ours_ff1 / 1e5, 1.0),
             harness.goal("FF1: ours vs libffx (info, >= 1×)", ours_ff1 / rates[("FF1", "libffx FF1")], 1.0),
             harness.goal("HMAC: ours vs stdlib loop (info, >= 0.9×)",
                          ours_hmac / rates[("HMAC", "stdlib hmac.new loop")], 0.9),
             harness.goal("HMAC: ours vs stdlib precomputed pads (info, >= 1×)",
                          ours_hmac / rates[("HMAC", "stdlib hmac copy of precomputed pads")], 1.0)]
    link_rows, link_goals = _linkage(scale, threads)
    return {"workload": ID, "title": TITLE, "scale": scale, "rows": rows + link_rows,
            "goals": goals + link_goals}


def _linkage(scale: str, threads: int) -> tuple[list[dict], list[dict]]:
    """CLK encoding vs clkhash (bit for bit, one process each) and 1:1 matching vs anonlink."""
    from anonlink.candidate_generation import find_candidate_pairs
    from anonlink.similarities import dice_coefficient_accelerated
    from anonlink.solving import greedy_solve

    from benchmarks.workload_d import to_bitarrays
    from lnds_spe.pseudonym.clk import Encoder, parse_schema, to_text
    from lnds_spe.pseudonym.match import match
    from tests.support.febrl import febrl4_rows

    n = LINK_RECORDS[scale]
    doc, secret = json.loads(SCHEMA_PATH.read_text()), os.urandom(32)
    a, b = febrl4_rows("a")[:n], febrl4_rows("b")[:n]
    records = a + b

    def encode():  # a fresh encoder each time: no cached tokens from an earlier call
        return Encoder(parse_schema(doc), secret).encode(records)

    theirs, peer_s = clkhash_encode(doc, secret, records)
    harness.check_equal("CLK encodings", to_text(encode()), theirs)
    cold, warm = harness.time_cold_warm(encode, 3)
    case = f"CLK encoding, FEBRL4 {len(records):,} records"
    rows = [harness.row(case, "lnds_spe clk.Encoder", cold, warm, threads=1,
                        per_second=round(len(records) / warm)),
            harness.row(case, "clkhash 0.18.3 (own venv, 1 worker)", peer_s, peer_s, threads=1,
                        per_second=round(len(records) / peer_s))]
    goals = [harness.goal("CLK encoding: ours vs clkhash (goal >= 10×)", peer_s / warm, 10.0)]
    filters = encode()
    fa, fb = filters[:n], filters[n:]
    ba, bb = to_bitarrays(fa), to_bitarrays(fb)

    def anonlink_match():
        candidates = find_candidate_pairs([ba, bb], dice_coefficient_accelerated, 0.8)
        return sorted((min(g)[1], max(g)[1]) for g in greedy_solve(candidates) if len(g) == 2)

    harness.check_equal("1:1 matches", sorted(match(fa, fb, 0.8, threads=1)), anonlink_match())
    case = f"Match 1:1 at Dice 0.8, FEBRL4 {n:,}×{n:,}"
    peer = "anonlink find_candidate_pairs + greedy_solve"
    impls, thread_of = {peer: anonlink_match}, {peer: 1}
    for t in sorted({1, threads}):
        name = f"lnds_spe match ({t} thread(s))"
        impls[name], thread_of[name] = (lambda t=t: match(fa, fb, 0.8, threads=t)), t
        impls[name]()  # compiled before the timing
    timing = harness.interleave(impls, harness.repeats_for(scale))
    for impl, stats in timing.items():
        rows.append(harness.timed_row(case, impl, stats, thread_of[impl]))
    goals.append(harness.goal("Matching: ours vs anonlink, 1 thread each (goal >= 1.5×)",
                              timing[peer]["median_s"]
                              / timing["lnds_spe match (1 thread(s))"]["median_s"], 1.5))
    return rows, goals
