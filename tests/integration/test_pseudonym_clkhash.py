"""Our CLK encoder and clkhash 0.18.3 (own virtualenv, subprocess) agree bit for bit: same schema,
same secret, same records, for every hashing option the encoder reads."""

import copy
import json
from pathlib import Path

import pytest

from benchmarks.workload_h import clkhash_encode
from lnds_spe.pseudonym.clk import Encoder, parse_schema, to_text
from tests.support.febrl import febrl4_rows

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "unit" / "pseudonym" / "data"
                     / "febrl_schema.json").read_text())
SECRET = bytes(range(7, 39))


def _feature(name, comparison, strategy, **extra):
    return {"identifier": name, "format": {"type": "string", "encoding": "utf-8"},
            "hashing": {"comparison": comparison, "strategy": strategy, **extra}}


OPTIONS = {
    "version": 3,
    "clkConfig": {"l": 512, "xor_folds": 1,
                  "kdf": {"type": "HKDF", "hash": "SHA512", "salt": "c2FsdA==", "keySize": 32}},
    "features": [
        {"identifier": "id", "ignored": True},
        _feature("name", {"type": "ngram", "n": 3}, {"bitsPerFeature": 100},
                 hash={"type": "doubleHash", "prevent_singularity": True},
                 missingValue={"sentinel": "N/A", "replaceWith": "unknown"}),
        _feature("city", {"type": "ngram", "n": 2, "positional": True}, {"bitsPerToken": 7}),  # blake
        _feature("code", {"type": "exact"}, {"bitsPerToken": 40}, hash={"type": "doubleHash"}),
        {"identifier": "born", "format": {"type": "date", "format": "%d/%m/%Y"},
         "hashing": {"comparison": {"type": "ngram", "n": 1, "positional": True},
                     "strategy": {"bitsPerToken": 9}, "hash": {"type": "doubleHash"}}},
        {"identifier": "age", "format": {"type": "integer"},
         "hashing": {"comparison": {"type": "ngram", "n": 1}, "strategy": {"bitsPerToken": 5}}},
    ],
}
NAMES = ["zoë", "N/A", "", "łukasz", "o'brien", "anna-lena", "x", "李小龍", "émile"]
OPTION_RECORDS = [[str(i), NAMES[i % 9], ["köln", "", "metz", "aa"][i % 4], f"C{i % 13}",
                   f"{1 + i % 28:02d}/{1 + i % 12:02d}/{1930 + i % 90}", f"+{i % 97}"] for i in range(400)]


@pytest.mark.parametrize(("schema", "records"), [
    (SCHEMA, febrl4_rows("a")[:2000]),
    (OPTIONS, OPTION_RECORDS),
], ids=["febrl-tutorial-schema", "every-option"])
def test_bit_for_bit_with_clkhash(schema, records):
    theirs, _ = clkhash_encode(schema, SECRET, records)
    ours = to_text(Encoder(parse_schema(copy.deepcopy(schema)), SECRET).encode(records))
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    assert len(ours) == len(records) and not differ, f"{len(differ)} differ, first {differ[:5]}"
    assert len(set(ours)) > len(records) // 4  # not a constant filter
