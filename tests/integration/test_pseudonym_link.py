"""`spe link encode|match` end to end: two holders encode with the project token, the SPE matches,
each holder gets only its own ids with shared linkage keys (no scores, no other side's ids)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

from tests.support.febrl import febrl4_text

DATA = Path(__file__).resolve().parents[1] / "unit" / "pseudonym" / "data"


def test_link_encode_match_gives_each_holder_its_own_ids(tmp_path):
    env = {**os.environ, "SPE_STATE_DIR": str(tmp_path / "state"), "SPE_IPMS_SERVICE": ""}

    def spe(*args, bearer=None):
        run_env = {**env, **({"SPE_IPMS_BEARER": bearer} if bearer else {})}
        done = subprocess.run([sys.executable, "-m", "lnds_spe", *map(str, args)], capture_output=True,
                              text=True, env=run_env, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    spe("pseudo", "init")
    issuer = spe("pseudo", "caller", "lnds", "--role", "issuer")
    holder = spe("pseudo", "caller", "h", "--role", "holder")
    token = spe("pseudo", "token", "--project", "cross-border", "--holder", "h", bearer=issuer)
    for side in "ab":
        (tmp_path / f"{side}.csv").write_text(febrl4_text(side).replace(", ", ","))
        spe("link", "encode", tmp_path / f"{side}.csv", tmp_path / f"e{side}.csv", "--token", token,
            "--schema", DATA / "febrl_schema.json", "--id-column", "rec_id", bearer=holder)
    spe("link", "match", tmp_path / "ea.csv", tmp_path / "eb.csv", tmp_path / "ka.csv", tmp_path / "kb.csv")
    read = {s: list(csv.DictReader((tmp_path / f"k{s}.csv").open())) for s in "ab"}
    assert all(set(rows[0]) == {"id", "linkage_key"} for rows in read.values())
    assert all(r["id"].endswith("-org") for r in read["a"]) and all("-dup-" in r["id"] for r in read["b"])
    assert {r["linkage_key"] for r in read["a"]} == {r["linkage_key"] for r in read["b"]}
    by_key = {r["linkage_key"]: r["id"] for r in read["b"]}
    same = [r for r in read["a"] if r["id"].split("-")[1] == by_key[r["linkage_key"]].split("-")[1]]
    assert len(same) >= 0.99 * 5000 and len(same) >= 0.99 * len(read["a"])
