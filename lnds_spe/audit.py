"""The append-only, hash-chained audit log: append, verify, and answer "who did what, when".

Each event's hash is sha256(previous hash + canonical JSON of the event, its sequence number
included), so editing, deleting or reordering any row breaks the chain at that row. A single
head row (last seq and hash) is locked by every appender, so concurrent writers never fork the
chain, and it also reveals rows cut from the tail.
"""

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lnds_spe.db import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Event:
    """One audit event as plain values."""

    seq: int
    time: str
    actor: str
    action: str
    project: str | None
    target: str | None
    outcome: str
    details: str  # canonical JSON text
    prev_hash: str
    hash: str

    def as_dict(self) -> dict:
        """The event for JSON output, with `details` decoded."""
        return {**asdict(self), "details": json.loads(self.details)}


@dataclass(frozen=True)
class ChainProblem:
    """The first row at which the chain breaks, and how."""

    seq: int
    reason: str


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, seq: int, time: str, actor: str, action: str, project: str | None,
               target: str | None, outcome: str, details: str) -> str:
    """The chain hash of one event."""
    body = canonical_json({
        "seq": seq, "time": time, "actor": actor, "action": action, "project": project,
        "target": target, "outcome": outcome, "details": details,
    })
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def find_chain_problem(events: Iterable[Event], head_seq: int, head_hash: str) -> ChainProblem | None:
    """Walk events in seq order; name the first edited, missing or misplaced row, if any."""
    expected_seq, prev_hash = 1, GENESIS_HASH
    for ev in events:
        if ev.seq != expected_seq:
            return ChainProblem(ev.seq, f"expected seq {expected_seq}: a row before it was deleted "
                                        "or the rows were renumbered")
        if ev.prev_hash != prev_hash:
            return ChainProblem(ev.seq, "its prev_hash does not match the row before it "
                                        "(a row was deleted, inserted or reordered)")
        fields = {k: v for k, v in asdict(ev).items() if k not in ("prev_hash", "hash")}
        if event_hash(prev_hash, **fields) != ev.hash:
            return ChainProblem(ev.seq, "its content does not match its hash (the row was edited)")
        expected_seq, prev_hash = ev.seq + 1, ev.hash
    last_seq = expected_seq - 1
    if (head_seq, head_hash) != (last_seq, prev_hash):
        return ChainProblem(last_seq + 1, f"the head says the chain ends at seq {head_seq}, "
                                          f"the rows end at seq {last_seq} (rows cut from the end)")
    return None


def utc_now() -> str:
    """The current time as fixed-width ISO 8601 UTC text, which sorts as it reads."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _to_event(row: AuditEvent) -> Event:
    return Event(row.seq, row.time, row.actor, row.action, row.project, row.target, row.outcome,
                 row.details, row.prev_hash, row.hash)


class AuditLog:
    """The audit log over one database session factory."""

    def __init__(self, session_factory):
        self._sessions = session_factory

    def append_in(self, session: Session, actor: str, action: str, *, project: str | None = None,
                  target: str | None = None, outcome: str = "ok",
                  details: dict | None = None) -> Event:
        """Append one event inside the caller's transaction (so it commits with the change)."""
        head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        fields = {
            "seq": head.seq + 1, "time": utc_now(), "actor": actor, "action": action,
            "project": project, "target": target, "outcome": outcome,
            "details": canonical_json(details or {}),
        }
        digest = event_hash(head.hash, **fields)
        row = AuditEvent(**fields, prev_hash=head.hash, hash=digest)
        session.add(row)
        head.seq, head.hash = row.seq, digest
        session.flush()
        return _to_event(row)

    def append(self, actor: str, action: str, **kwargs) -> Event:
        """Append one event in its own transaction."""
        with self._sessions.begin() as session:
            return self.append_in(session, actor, action, **kwargs)

    def events(self, up_to_seq: int | None = None) -> Iterator[Event]:
        """Events in seq order (up to and including `up_to_seq`), streamed."""
        stmt = select(AuditEvent).order_by(AuditEvent.seq)
        if up_to_seq is not None:
            stmt = stmt.where(AuditEvent.seq <= up_to_seq)
        with self._sessions() as session:
            for row in session.execute(stmt).scalars():
                yield _to_event(row)

    def verify(self) -> tuple[int, ChainProblem | None]:
        """(number of events checked, first problem or None); events appended meanwhile wait."""
        with self._sessions() as session:
            head = session.get(AuditHead, 1)
            head_seq, head_hash = head.seq, head.hash
        return head_seq, find_chain_problem(self.events(head_seq), head_seq, head_hash)

    def query(self, *, project: str | None = None, user: str | None = None,
              since: str | None = None, until: str | None = None) -> list[Event]:
        """Events of a project and/or by or about a user, with since <= time < until."""
        stmt = select(AuditEvent).order_by(AuditEvent.seq)
        if project:
            stmt = stmt.where(AuditEvent.project == project)
        if user:
            stmt = stmt.where(or_(AuditEvent.actor == user, AuditEvent.target == user))
        if since:
            stmt = stmt.where(AuditEvent.time >= since)
        if until:
            stmt = stmt.where(AuditEvent.time < until)
        with self._sessions() as session:
            return [_to_event(row) for row in session.execute(stmt).scalars()]
