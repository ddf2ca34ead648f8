"""The pure hash-chain check: every kind of tampering is caught at the right row."""

from dataclasses import replace

from lnds_spe.audit import GENESIS_HASH, Event, canonical_json, event_hash, find_chain_problem


def make_chain(n: int) -> list[Event]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        fields = dict(seq=seq, time=f"2026-11-29T10:00:{seq:02d}.000000Z", actor=f"user{seq % 2}",
                      action="test", project="p", target=None, outcome="ok",
                      details=canonical_json({"n": seq}))
        digest = event_hash(prev, **fields)
        events.append(Event(**fields, prev_hash=prev, hash=digest))
        prev = digest
    return events


def test_intact_chain_passes():
    chain = make_chain(5)
    assert find_chain_problem(chain, 5, chain[-1].hash) is None
    assert find_chain_problem([], 0, GENESIS_HASH) is None


def test_edited_row_is_named():
    chain = make_chain(5)
    chain[2] = replace(chain[2], details=canonical_json({"n": 99}))
    problem = find_chain_problem(chain, 5, chain[-1].hash)
    assert problem.seq == 3 and "edited" in problem.reason


def test_deleted_row_is_named_by_the_next_one():
    chain = make_chain(5)
    del chain[1]
    assert find_chain_problem(chain, 5, chain[-1].hash).seq == 3


def test_swapped_rows_are_caught():
    chain = make_chain(5)
    a, b = chain[1], chain[2]
    chain[1], chain[2] = replace(b, seq=2), replace(a, seq=3)
    assert find_chain_problem(chain, 5, chain[-1].hash).seq == 2


def test_cut_tail_is_caught_by_the_head():
    chain = make_chain(5)
    problem = find_chain_problem(chain[:4], 5, chain[-1].hash)
    assert problem.seq == 5 and "cut from the end" in problem.reason


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": [1, "é"]}) == canonical_json({"a": [1, "é"], "b": 1})
