"""Same analysis through the real ACRO 1.0.2 (own virtualenv, subprocess) and lnds_spe.sdc.ACRO,
on data where ACRO is right: the flagged cells must be identical, rule by rule."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from lnds_spe.sdc import ACRO

ROOT = Path(__file__).resolve().parents[2]
ACRO_PYTHON = Path(os.environ.get("LNDS_ACRO_VENV", ROOT / ".venv-acro")) / "bin" / "python"
RULE_OF_ACRO_CHECK = {"MinimumThresholdCheck": "threshold", "NKCheck": "nk-rule",
                      "PPercentCheck": "p-ratio", "PresenceOfZeroCheck": "zeros"}

PEER_SCRIPT = r"""
import json, logging, sys
import pandas as pd
logging.disable(logging.CRITICAL)
from acro import ACRO
df = pd.read_csv(sys.argv[1])
session = ACRO(suppress=False)
session.crosstab(df.region, df.sex)
session.crosstab(df.region, df.sex, values=df.income, aggfunc="mean")
session.crosstab(df.region, df.sex, values=df.income, aggfunc="sum", margins=True)
out = []
for record in session.results.results.values():
    outcome = record.outcome
    out.append({str(c): {str(r): outcome.loc[r, c] for r in outcome.index} for c in outcome.columns})
print(json.dumps(out))
"""


def analysis_data() -> pd.DataFrame:
    """Counts with small cells, one zero-free dominated cell, no negatives and no missing values."""
    rng = np.random.default_rng(11)
    rows = []
    sizes = {("East", "F"): 40, ("East", "M"): 35, ("North", "F"): 4, ("North", "M"): 30,
             ("South", "F"): 25, ("South", "M"): 9, ("West", "F"): 60, ("West", "M"): 55}
    for (region, sex), n in sizes.items():
        incomes = rng.lognormal(10, 0.5, n)
        if (region, sex) == ("West", "M"):
            incomes[0] = incomes.sum() * 30  # one dominant contributor
        rows += [(region, sex, float(v)) for v in incomes]
    return pd.DataFrame(rows, columns=["region", "sex", "income"])


def ours_flagged(df: pd.DataFrame) -> list[dict[str, dict[str, set[str]]]]:
    """Our outcome text per cell as sets of rule names."""
    session = ACRO(suppress=False)
    session.crosstab(df.region, df.sex)
    session.crosstab(df.region, df.sex, values=df.income, aggfunc="mean")
    session.crosstab(df.region, df.sex, values=df.income, aggfunc="sum", margins=True)
    result = []
    for record in session.results.results.values():
        outcome = record.outcome
        result.append({str(c): {str(r): _rules(outcome.loc[r, c]) for r in outcome.index}
                       for c in outcome.columns})
    return result


def _rules(text: str) -> set[str]:
    """Rule names in an outcome cell ('ok' = none), ACRO's check names translated."""
    names = {part.strip() for part in text.split(";") if part.strip() and part.strip() != "ok"}
    return {RULE_OF_ACRO_CHECK.get(n, n) for n in names}


def test_flagged_cells_identical_to_acro(tmp_path):
    assert ACRO_PYTHON.exists(), (
        f"ACRO peer virtualenv missing: {ACRO_PYTHON} not found; run scripts/setup-acro-peer.sh"
    )
    df = analysis_data()
    data_path = tmp_path / "data.csv"
    df.to_csv(data_path, index=False)
    done = subprocess.run([str(ACRO_PYTHON), "-c", PEER_SCRIPT, str(data_path)],
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = [
        {c: {r: _rules(text) for r, text in col.items()} for c, col in table.items()}
        for table in json.loads(done.stdout.strip().splitlines()[-1])
    ]
    ours = ours_flagged(df)
    assert len(ours) == len(theirs) == 3
    for our_table, their_table in zip(ours, theirs, strict=True):
        assert our_table == their_table
    # the comparison is not vacuous: each rule fires somewhere
    fired = {rule for table in ours for col in table.values() for cell in col.values()
             for rule in cell}
    assert {"threshold", "nk-rule", "p-ratio"} <= fired
