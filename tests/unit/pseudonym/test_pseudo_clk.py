"""CLK encodings: clkhash v3 schema reading, per-field salting, hardening, and FEBRL4 linkage quality."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from lnds_spe.pseudonym.clk import (
    Encoder,
    Feature,
    Hardening,
    from_text,
    ngram_codes,
    parse_schema,
    to_text,
    tokens,
)
from lnds_spe.pseudonym.errors import LinkageSchemaError
from lnds_spe.pseudonym.match import linkage_keys, match
from tests.support.febrl import febrl4_rows

DATA = Path(__file__).parent / "data"
SCHEMA = json.loads((DATA / "febrl_schema.json").read_text())
SECRET = bytes(range(32))


def test_febrl4_precision_and_recall_at_dice_08():
    a, b = febrl4_rows("a"), febrl4_rows("b")
    assert len(a) == len(b) == 5000
    encoder = Encoder(parse_schema(SCHEMA), SECRET)
    pairs = match(encoder.encode(a), encoder.encode(b), threshold=0.8)
    true = sum(a[i][0].split("-")[1] == b[j][0].split("-")[1] for i, j in pairs)
    precision, recall = true / len(pairs), true / 5000
    assert precision >= 0.99 and recall >= 0.99, (precision, recall)


def test_each_holder_gets_only_its_ids_and_shared_keys():
    a, b = febrl4_rows("a")[:300], febrl4_rows("b")[:3000]
    encoder = Encoder(parse_schema(SCHEMA), SECRET)
    pairs = match(encoder.encode(a), encoder.encode(b), threshold=0.8)
    side_a, side_b = linkage_keys(pairs, [r[0] for r in a], [r[0] for r in b])
    assert len(side_a) == len(side_b) == len(pairs) > 0
    assert {i for i, _ in side_a} <= {r[0] for r in a} and {i for i, _ in side_b} <= {r[0] for r in b}
    assert {k for _, k in side_a} == {k for _, k in side_b}
    assert len({k for _, k in side_a}) == len(pairs)


def test_per_field_salting_secret_and_text_round_trip():
    doc = {"version": 3, "clkConfig": {"l": 128, "kdf": {"type": "HKDF", "hash": "SHA256"}},
           "features": [{"identifier": f, "hashing": {"comparison": {"type": "ngram", "n": 2},
                                                      "strategy": {"bitsPerToken": 3}}} for f in ("x", "y")]}
    encoder = Encoder(parse_schema(doc), SECRET)
    in_x, in_y = encoder.encode([["anna", ""], ["", "anna"]])
    assert in_x.any() and in_y.any() and not np.array_equal(in_x, in_y)
    assert not np.array_equal(Encoder(parse_schema(doc), bytes(32)).encode([["anna", ""]])[0], in_x)
    filters = encoder.encode([["anna", "x"], ["bob", "y"]])
    assert filters.shape == (2, 16)
    assert np.array_equal(from_text(to_text(filters)), filters)


@pytest.mark.parametrize("hardening,width", [(Hardening.XOR_FOLD, 64), (Hardening.BALANCE, 256)])
def test_hardening_shapes(hardening, width):
    doc = copy.deepcopy(SCHEMA)
    doc["clkConfig"]["l"] = 128
    filters = Encoder(parse_schema(doc), SECRET, hardening).encode(febrl4_rows("a")[:5])
    assert filters.shape == (5, width // 8)
    if hardening is Hardening.BALANCE:
        assert all(int(np.unpackbits(row).sum()) == 128 for row in filters)  # every filter half ones


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(version=2), "version 3"),
    (lambda d: d["clkConfig"].update(l=100), "multiple of 64"),
    (lambda d: d["features"][1]["hashing"]["comparison"].update(type="numeric"), "only ngram and exact"),
    (lambda d: d["features"][1]["hashing"]["hash"].update(type="sha3"), "unknown hash"),
    (lambda d: d["clkConfig"].update(l=192) or d["features"][1]["hashing"].pop("hash"), "power of two"),
    (lambda d: d.pop("features"), "not a clkhash v3"),
])
def test_schema_refusals(change, message):
    doc = copy.deepcopy(SCHEMA)
    change(doc)
    with pytest.raises(LinkageSchemaError, match=message):
        parse_schema(doc)


@pytest.mark.parametrize(("n", "positional"), [(1, False), (1, True), (2, False), (2, True), (3, False)])
def test_vectorised_ngrams_are_the_tokens(n, positional):
    feature = Feature("f", 0, n, positional, 10, None, False, False, "lower", "string", "", "utf-8",
                      ("?", "x"))
    values = ["Anna", "", "?", "łódź 李", "a", "o'Brien-Smith", "ZZ"]
    counts, codes, grams = ngram_codes(values, feature)
    got, at = [], 0
    for count in counts:
        got.append([grams[c] for c in codes[at:at + count]])
        at += count
    assert got == [tokens(v, feature) for v in values]
    assert ngram_codes(["a\x00b"], feature) is None  # a NUL: the per-value path
