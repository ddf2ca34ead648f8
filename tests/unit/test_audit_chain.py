"""The pure audit checks (L2, L4): every kind of tampering is caught at the right row."""

import json
from dataclasses import asdict, replace

import pytest

from lnds_spe.audit import (
    GENESIS_HASH,
    Event,
    app_role_grants,
    canonical_json,
    chain_seal,
    compare_checkpoints,
    event_hash,
    expected_registry,
    find_chain_problem,
    key_id,
    make_checkpoint,
    new_chain_row,
    parse_checkpoints,
    reconcile,
)
from lnds_spe.errors import SPEError


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


# The keyed chain (L4)

KEY = bytes(range(32))


def make_keyed_chain(n: int, keyed_from: int, key: bytes | None = KEY) -> list[Event]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        fields = dict(seq=seq, time=f"2026-11-29T10:00:{seq:02d}.000000Z", actor="a", action="t",
                      project="p", target=None, outcome="ok", details=canonical_json({"n": seq}))
        digest = event_hash(prev, **fields, key=key if seq >= keyed_from else None)
        events.append(Event(**fields, prev_hash=prev, hash=digest))
        prev = digest
    return events


def test_keyed_chain_passes_with_its_key_and_old_rows_stay_plain():
    chain = make_keyed_chain(6, keyed_from=4)
    assert find_chain_problem(chain, 6, chain[-1].hash, key=KEY, keyed_from=4) is None


def test_chain_recomputed_without_the_key_is_named_at_the_first_keyed_row():
    for forged_key in (None, b"k" * 32):
        chain = make_keyed_chain(6, keyed_from=1, key=forged_key)
        problem = find_chain_problem(chain, 6, chain[-1].hash, key=KEY, keyed_from=1)
        assert problem.seq == 1 and "audit key" in problem.reason


def test_keyed_row_edited_is_named():
    chain = make_keyed_chain(5, keyed_from=1)
    chain[3] = replace(chain[3], actor="mallory")
    problem = find_chain_problem(chain, 5, chain[-1].hash, key=KEY, keyed_from=1)
    assert problem.where == "seq 4" and "edited" in problem.reason


def test_without_a_head_the_rows_are_still_checked():
    chain = make_keyed_chain(3, keyed_from=1)
    assert find_chain_problem(chain, None, None, key=KEY, keyed_from=1) is None
    chain[1] = replace(chain[1], actor="x")
    assert find_chain_problem(chain, None, None, key=KEY, keyed_from=1).seq == 2


def test_key_id_and_chain_seal_depend_on_the_key():
    assert key_id(KEY) != key_id(b"k" * 32) and len(key_id(KEY)) == 16
    row = new_chain_row(KEY, 7)
    assert row["mac"] == chain_seal(KEY, row["chain_id"], 7, row["key_id"])
    assert row["mac"] != chain_seal(KEY, row["chain_id"], 8, row["key_id"])


# Checkpoints outside the database

def test_checkpoints_catch_a_cut_tail_and_a_rewrite():
    chain = make_keyed_chain(5, keyed_from=1)
    lines = [json.dumps(asdict(make_checkpoint(KEY, "c1", ev.seq, ev.hash, ev.time)))
             for ev in chain]
    found, bad = parse_checkpoints(lines, "file f", KEY, "c1")
    assert bad == [] and len(found) == 5
    hashes = {ev.seq: ev.hash for ev in chain}
    assert compare_checkpoints(found, hashes, 5) == []
    (cut,) = compare_checkpoints(found, {s: h for s, h in hashes.items() if s <= 3}, 3)
    assert cut.seq == 4 and "file f line 5" in cut.reason and "cut" in cut.reason
    rewritten = compare_checkpoints(found, {**hashes, 2: "f" * 64}, 5)
    assert [p.seq for p in rewritten] == [2] and "rewritten" in rewritten[0].reason


def test_bad_checkpoint_lines_are_named():
    good = json.dumps(asdict(make_checkpoint(KEY, "c1", 1, "a" * 64, "t")))
    forged = json.dumps({**json.loads(good), "seq": 9})
    other = json.dumps(asdict(make_checkpoint(KEY, "c2", 1, "a" * 64, "t")))
    found, bad = parse_checkpoints([good, "garbage", forged, other, "[1]"], "file f", KEY, "c1")
    assert [w for w, _ in found] == ["file f line 1"]
    assert [(p.where, p.reason.split(":")[0].split(" ")[0]) for p in bad] == [
        ("file f line 2", "unreadable"), ("file f line 3", "its"), ("file f line 4", "belongs"),
        ("file f line 5", "unreadable")]
    assert "MAC" in bad[1].reason


# The registry against the events that built it

def ev(seq: int, action: str, target: str | None = None, **details) -> Event:
    return Event(seq, "t", "admin", action, "p1", target, "ok", canonical_json(details), "", "")


REGISTRY_EVENTS = [ev(1, "project.create"), ev(2, "member.add", "alice", role="researcher"),
                   ev(3, "member.add", "bob", role="researcher"),
                   ev(4, "member.remove", "bob", roles=["researcher"]),
                   ev(5, "dataset.add", "survey", location="s3://b/1.c4gh"),
                   ev(6, "dataset.rekey", "survey", location="s3://b/2.c4gh"),
                   ev(7, "project.status", to="suspended")]


def test_registry_matching_its_events_passes():
    assert reconcile(REGISTRY_EVENTS, [(1, "p1", "suspended")], [(1, "p1", "alice", "researcher")],
                     [(1, "p1", "survey", "s3://b/2.c4gh")]) == []


def test_rows_without_events_and_events_without_rows_are_named():
    problems = reconcile(REGISTRY_EVENTS, [(1, "p1", "active"), (2, "p2", "active")],
                         [(7, "p1", "mallory", "researcher")], [])
    named = {(p.where, p.reason) for p in problems}
    assert ("members row 7", "(p1, mallory, researcher) has no member.add event") in named
    assert ("projects row 2", "project p2 has no project.create event") in named
    assert any(w == "projects row 1" and "suspended" in r for w, r in named)
    assert any(w == "seq 2" and "alice" in r and "no members row" in r for w, r in named)
    assert any(w == "seq 6" and "no datasets row" in r for w, r in named)


def test_refused_events_build_nothing():
    denied = Event(1, "t", "a", "member.add", "p1", "x", "denied", canonical_json({"role": "r"}), "", "")
    assert expected_registry([denied]) == ({}, {}, {})


# PostgreSQL rights

def test_the_app_role_gets_no_update_or_delete_on_audit_rows():
    grants = app_role_grants("spe_app", ["audit_events", "audit_head", "audit_chain", "members"])
    on = {t: [g for g in grants if g.startswith("GRANT") and f" {t} " in g.replace('"', " ")]
          for t in ("audit_events", "audit_head", "audit_chain", "members")}
    assert on["audit_events"] == ["GRANT SELECT, INSERT ON TABLE audit_events TO \"spe_app\""]
    assert on["audit_head"] == ["GRANT SELECT, UPDATE (seq, hash) ON TABLE audit_head TO \"spe_app\""]
    assert "UPDATE" not in on["audit_chain"][0] and "DELETE" in on["members"][0]
    with pytest.raises(SPEError, match="invalid role name"):
        app_role_grants('x"; DROP TABLE members; --', [])
