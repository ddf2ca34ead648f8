"""The append-only audit log: a keyed hash chain, checkpoints outside the database, and verify.

Each event's hash links it to the one before: sha256(previous hash + canonical JSON of the event,
its seq included) for events written before the chain was keyed, and from `keyed_from` on an
HMAC-SHA256 of the same text under the audit key. The key is a file in the keys folder of the SPE's
state dir (see `audit_home`), made once, mode 0600, never in the database and never in a
workspace; so whoever holds only the database can neither edit a row nor recompute the chain.

A single head row (last seq and hash) is locked by every appender, so concurrent writers never
fork the chain. After each commit the head is also written, with its MAC, as a checkpoint line
appended to a file in the state dir, and every STORE_EVERY events (when $SPE_STORE_URL names an
object store) to the object store; verify compares them with the rows, so rows cut from the end
with the head moved back are found.
Verify also replays the events that build the registry and compares them with its tables.
"""

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import event as sa_event
from sqlalchemy import inspect, or_, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from lnds_spe.clock import utc_now
from lnds_spe.config import setting, state_dir
from lnds_spe.db import AuditChain, AuditEvent, AuditHead, Dataset, Member, Project
from lnds_spe.errors import SPEError

GENESIS_HASH = "0" * 64
KEY_FILE = "audit.key"
STORE_EVERY_ENV = "SPE_AUDIT_STORE_EVERY"  # object-store checkpoint every N events
STORE_EVERY = 100  # an S3 checkpoint costs ~60-90 ms (multipart PUT); the file ~1-10 ms (fsync)
REGISTRY_ACTIONS = ("project.create", "project.status", "member.add", "member.remove", "dataset.add",
                    "dataset.rekey")
AUDIT_TABLES = ("audit_events", "audit_head", "audit_chain")
log = logging.getLogger(__name__)


class AuditError(SPEError):
    """The audit log cannot be written as it stands."""


class AuditHeadMissing(AuditError):
    """The audit_head row is gone."""


class AuditChainMissing(AuditError):
    """The audit_chain row is gone."""


class AuditKeyMissing(AuditError):
    """The audit key file is not there."""


class AuditKeyMismatch(AuditError):
    """The audit key file is not the key this chain was made with, or the chain row was edited."""


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
class Problem:
    """One thing wrong with the log, where it is (a seq, a table row, a checkpoint) and how."""

    where: str
    reason: str
    seq: int | None = None


def chain_problem(seq: int, reason: str) -> Problem:
    """A problem at one row of the chain."""
    return Problem(f"seq {seq}", reason, seq)


ChainProblem = Problem  # the name earlier callers used


@dataclass
class Report:
    """What verify found: events checked, problems (any means broken), and notes."""

    events: int
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# Keys and MACs

def canonical_json(value: object) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def mac(key: bytes, message: str) -> str:
    """HMAC-SHA256 of a text under the audit key, as hex."""
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A short name of a key that reveals nothing of it."""
    return mac(key, "lnds-spe audit key id")[:16]


def chain_seal(key: bytes, chain_id: str, keyed_from: int, kid: str) -> str:
    """The MAC of the audit_chain row."""
    return mac(key, canonical_json({"chain": chain_id, "keyed_from": keyed_from, "key_id": kid}))


def audit_home(url: str) -> Path:
    """The state dir whose keys/ and audit/ serve this database: a SQLite file's own folder
    (by default the state dir itself), else $SPE_STATE_DIR."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).absolute().parent
    return state_dir()


def key_path(home: Path) -> Path:
    """Where the audit key of a state dir lives."""
    return home / "keys" / KEY_FILE


def load_key(path: Path) -> bytes:
    """The audit key; AuditKeyMissing naming the file if it is not there or not a key."""
    try:
        value = bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        raise AuditKeyMissing(f"the audit key {path} is missing: restore it from your backup "
                              "(without it the chain cannot be checked or extended)") from None
    except (OSError, ValueError) as exc:
        raise AuditKeyMissing(f"the audit key {path} is unreadable ({exc}): restore it from "
                              "your backup") from None
    if len(value) != 32:
        raise AuditKeyMissing(f"the audit key {path} is not a 32-byte key: restore it from backup")
    return value


def load_or_create_key(path: Path) -> bytes:
    """The audit key, made once (32 random bytes, hex, mode 0600, folder 0700) if absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_key(path)  # another process made it first
        try:
            os.write(fd, (secrets.token_bytes(32).hex() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    return load_key(path)


def new_chain_row(key: bytes, keyed_from: int) -> dict:
    """The audit_chain row of a chain keyed from `keyed_from` (for the migration)."""
    chain_id, kid = secrets.token_hex(16), key_id(key)
    return {"id": 1, "chain_id": chain_id, "keyed_from": keyed_from, "key_id": kid,
            "mac": chain_seal(key, chain_id, keyed_from, kid)}


# The chain

def event_hash(prev_hash: str, seq: int, time: str, actor: str, action: str, project: str | None,
               target: str | None, outcome: str, details: str, *, key: bytes | None = None) -> str:
    """The chain hash of one event: sha256, or HMAC-SHA256 under the audit key when keyed."""
    body = prev_hash + canonical_json({
        "seq": seq, "time": time, "actor": actor, "action": action, "project": project,
        "target": target, "outcome": outcome, "details": details,
    })
    if key is None:
        return hashlib.sha256(body.encode()).hexdigest()
    return mac(key, body)


def find_chain_problem(events: Iterable[Event], head_seq: int | None, head_hash: str | None, *,
                       key: bytes | None = None, keyed_from: int | None = None) -> Problem | None:
    """Walk events in seq order; name the first edited, missing, misplaced or unkeyed row, if any.

    Rows from `keyed_from` on must carry the MAC under `key`; with no key they are checked for
    their links only. With no head (`head_seq` None) the tail is not compared.
    """
    expected_seq, prev_hash = 1, GENESIS_HASH
    for ev in events:
        if ev.seq != expected_seq:
            return chain_problem(ev.seq, f"expected seq {expected_seq}: a row before it was "
                                         "deleted or the rows were renumbered")
        if ev.prev_hash != prev_hash:
            return chain_problem(ev.seq, "its prev_hash does not match the row before it "
                                         "(a row was deleted, inserted or reordered)")
        keyed = keyed_from is not None and ev.seq >= keyed_from
        fields = {k: v for k, v in asdict(ev).items() if k not in ("prev_hash", "hash")}
        if keyed and key is not None and event_hash(prev_hash, **fields, key=key) != ev.hash:
            return chain_problem(ev.seq, "its content does not match its MAC under the audit key "
                                         "(the row was edited, or the chain recomputed without "
                                         "the key)")
        if not keyed and event_hash(prev_hash, **fields) != ev.hash:
            return chain_problem(ev.seq, "its content does not match its hash (the row was edited)")
        expected_seq, prev_hash = ev.seq + 1, ev.hash
    last_seq = expected_seq - 1
    if head_seq is not None and (head_seq, head_hash) != (last_seq, prev_hash):
        return chain_problem(last_seq + 1, f"the head says the chain ends at seq {head_seq}, "
                                           f"the rows end at seq {last_seq} (rows cut from the end)")
    return None


# Checkpoints

@dataclass(frozen=True)
class Checkpoint:
    """The head at one moment, MAC'd with the audit key, kept outside the database."""

    chain: str
    seq: int
    hash: str
    time: str
    key_id: str
    mac: str = ""

    def body(self) -> str:
        return canonical_json({"chain": self.chain, "seq": self.seq, "hash": self.hash,
                               "time": self.time, "key_id": self.key_id})


def make_checkpoint(key: bytes, chain: str, seq: int, hash_: str, time: str) -> Checkpoint:
    """A signed checkpoint of the head."""
    unsigned = Checkpoint(chain, seq, hash_, time, key_id(key))
    return Checkpoint(**{**asdict(unsigned), "mac": mac(key, unsigned.body())})


def parse_checkpoints(lines: Iterable[str], source: str, key: bytes | None,
                      chain: str) -> tuple[list[tuple[str, Checkpoint]], list[Problem]]:
    """Checkpoints of this chain from text lines, each with where it came from; bad lines named."""
    found, problems = [], []
    for number, line in enumerate(lines, start=1):
        where = f"{source} line {number}"
        if not line.strip():
            continue
        try:
            cp = Checkpoint(**json.loads(line))
            int(cp.seq)
        except (ValueError, TypeError):
            problems.append(Problem(where, "unreadable: not a checkpoint line"))
            continue
        if cp.chain != chain:
            problems.append(Problem(where, f"belongs to chain {cp.chain}, not {chain}"))
        elif key is not None and not hmac.compare_digest(mac(key, cp.body()), cp.mac):
            problems.append(Problem(where, "its MAC does not match under the audit key "
                                           "(forged or edited)"))
        else:
            found.append((where, cp))
    return found, problems


def compare_checkpoints(checkpoints: Iterable[tuple[str, Checkpoint]], row_hashes: dict[int, str],
                        last_row: int) -> list[Problem]:
    """Each checkpoint must match the row at its seq; one beyond the chain's end means a cut tail.

    A cut is named once per source, by its newest checkpoint."""
    problems, beyond = [], {}
    for where, cp in checkpoints:
        if cp.seq > last_row:
            source = where.rsplit(" line ", 1)[0]
            if source not in beyond or cp.seq > beyond[source][1].seq:
                beyond[source] = (where, cp)
        elif cp.seq > 0 and row_hashes.get(cp.seq) != cp.hash:
            problems.append(chain_problem(
                cp.seq, f"its hash differs from the one {where} recorded (the chain was "
                        "rewritten after that checkpoint)"))
    for where, cp in beyond.values():
        problems.append(chain_problem(
            last_row + 1, f"{where} recorded the chain at seq {cp.seq}, but it ends at seq "
                          f"{last_row}: rows seq {last_row + 1} to {cp.seq} were cut from the "
                          "end and the head moved back"))
    return problems


# Registry reconciliation

def expected_registry(events: Iterable[Event]) -> tuple[dict, dict, dict]:
    """Replay registry-building events: projects {slug: (status, seq)},
    members {(slug, user, role): seq}, datasets {(slug, name): (location, seq)}."""
    projects: dict[str, tuple[str, int]] = {}
    members: dict[tuple[str, str, str], int] = {}
    datasets: dict[tuple[str, str], tuple[str, int]] = {}
    for ev in events:
        if ev.outcome != "ok" or ev.action not in REGISTRY_ACTIONS or not ev.project:
            continue
        details = json.loads(ev.details)
        if ev.action == "project.create":
            projects[ev.project] = ("active", ev.seq)
        elif ev.action == "project.status":
            projects[ev.project] = (details.get("to", ""), ev.seq)
        elif ev.action == "member.add":
            members[(ev.project, ev.target or "", details.get("role", ""))] = ev.seq
        elif ev.action == "member.remove":
            for role in details.get("roles", []):
                members.pop((ev.project, ev.target or "", role), None)
        elif ev.action == "dataset.add" or (ev.action == "dataset.rekey"
                                            and (ev.project, ev.target or "") in datasets):
            datasets[(ev.project, ev.target or "")] = (details.get("location", ""), ev.seq)
    return projects, members, datasets


def reconcile(events: Iterable[Event], projects: Iterable[tuple[int, str, str]],
              members: Iterable[tuple[int, str, str, str]],
              datasets: Iterable[tuple[int, str, str, str]]) -> list[Problem]:
    """Registry rows without the events that made them, and events whose rows are gone.

    Rows are (id, slug, status), (id, slug, username, role), (id, slug, name, location).
    """
    want_projects, want_members, want_datasets = expected_registry(events)
    problems = []
    for row_id, slug, status in projects:
        if slug not in want_projects:
            problems.append(Problem(f"projects row {row_id}",
                                    f"project {slug} has no project.create event"))
            continue
        want_status, seq = want_projects.pop(slug)
        if status != want_status:
            problems.append(Problem(f"projects row {row_id}",
                                    f"project {slug} is {status}, its events (last seq {seq}) "
                                    f"say {want_status}"))
    for slug, (_, seq) in want_projects.items():
        problems.append(chain_problem(seq, f"project {slug}: no projects row"))
    for row_id, slug, username, role in members:
        if want_members.pop((slug, username, role), None) is None:
            problems.append(Problem(f"members row {row_id}",
                                    f"({slug}, {username}, {role}) has no member.add event"))
    for (slug, username, role), seq in want_members.items():
        problems.append(chain_problem(seq, f"member.add of {username} as {role} in {slug}: "
                                           "no members row"))
    for row_id, slug, name, location in datasets:
        wanted = want_datasets.pop((slug, name), None)
        if wanted is None:
            problems.append(Problem(f"datasets row {row_id}",
                                    f"dataset {slug}/{name} has no dataset.add event"))
        elif wanted[0] != location:
            problems.append(Problem(f"datasets row {row_id}",
                                    f"dataset {slug}/{name} is at {location}, its event "
                                    f"(seq {wanted[1]}) says {wanted[0]}"))
    for (slug, name), (_, seq) in want_datasets.items():
        problems.append(chain_problem(seq, f"dataset.add of {slug}/{name}: no datasets row"))
    return problems


# PostgreSQL: the application's role

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def app_role_grants(role: str, tables: Iterable[str]) -> list[str]:
    """GRANTs for the role the SPE connects as: full rows on registry tables; on the audit
    tables only INSERT/SELECT of events, UPDATE of the head's columns, SELECT of the chain row."""
    if not ROLE_NAME.fullmatch(role):
        raise SPEError(f"invalid role name {role!r}: use lower-case letters, digits and _")
    quoted = f'"{role}"'
    statements = [f"GRANT USAGE ON SCHEMA public TO {quoted}"]
    for table in sorted(tables):
        statements.append(f'REVOKE ALL ON TABLE "{table}" FROM {quoted}')
        if table == "audit_events":
            statements.append(f"GRANT SELECT, INSERT ON TABLE audit_events TO {quoted}")
        elif table == "audit_head":
            statements.append(f"GRANT SELECT, UPDATE (seq, hash) ON TABLE audit_head TO {quoted}")
        elif table in ("audit_chain", "alembic_version"):
            statements.append(f'GRANT SELECT ON TABLE "{table}" TO {quoted}')
        else:
            statements.append(f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "{table}" TO {quoted}')
    statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
    return statements


def grant_app_role(engine: Engine, role: str) -> list[str]:
    """Create the role (LOGIN, no password) if missing and give it exactly the rights above."""
    if engine.dialect.name != "postgresql":
        raise SPEError("application roles are a PostgreSQL feature: SQLite has no roles "
                       "(keep the SQLite file readable by the hub's account only)")
    tables = inspect(engine).get_table_names(schema="public")
    statements = app_role_grants(role, tables)
    with engine.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
        if not exists:
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        for statement in statements:
            conn.execute(text(statement))
    return statements


# The log over a database

def _to_event(row: AuditEvent) -> Event:
    return Event(row.seq, row.time, row.actor, row.action, row.project, row.target, row.outcome,
                 row.details, row.prev_hash, row.hash)


def _store_every() -> int:
    try:
        return max(1, int(setting(STORE_EVERY_ENV) or STORE_EVERY))
    except ValueError:
        return STORE_EVERY


def _store_checkpoint_key(chain: str) -> str:
    return f"audit/{chain}/checkpoint.json"


_PENDING = "lnds_spe.audit.pending"


class AuditLog:
    """The audit log over one database session factory."""

    def __init__(self, session_factory, home: Path | None = None):
        self._sessions = session_factory
        self._home = home if home is not None else audit_home(
            str(session_factory.kw["bind"].url.render_as_string(hide_password=False)))
        self._key: bytes | None = None
        self._chain: str | None = None
        self._store = None  # opened once: a new S3 client per checkpoint costs more than the PUT

    @property
    def key_path(self) -> Path:
        return key_path(self._home)

    def checkpoint_path(self, chain: str) -> Path:
        """The checkpoint file of a chain in the state dir."""
        return self._home / "audit" / f"{chain}.checkpoints"

    def _checked_key(self, chain: AuditChain) -> bytes:
        """The key, checked once against the chain row (its key id and MAC)."""
        if self._key is None or self._chain != chain.chain_id:
            key = load_key(self.key_path)
            if key_id(key) != chain.key_id:
                raise AuditKeyMismatch(f"the audit key {self.key_path} (id {key_id(key)}) is not "
                                       f"the key this chain was made with (id {chain.key_id}): "
                                       "restore the right key file")
            if not hmac.compare_digest(chain_seal(key, chain.chain_id, chain.keyed_from,
                                                  chain.key_id), chain.mac):
                raise AuditKeyMismatch("the audit_chain row was edited (its MAC does not match): "
                                       "run `spe audit verify`")
            self._key, self._chain = key, chain.chain_id
        return self._key

    def append_in(self, session: Session, actor: str, action: str, *, project: str | None = None,
                  target: str | None = None, outcome: str = "ok",
                  details: dict | None = None) -> Event:
        """Append one event inside the caller's transaction (so it commits with the change)."""
        head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()
                               ).scalar_one_or_none()
        if head is None:
            raise AuditHeadMissing("the audit head row is missing (table audit_head, id 1), so "
                                   "nothing can be recorded: run `spe audit verify` and restore "
                                   "the database from backup")
        chain = session.get(AuditChain, 1)
        if chain is None:
            raise AuditChainMissing("the audit_chain row is missing, so nothing can be recorded: "
                                    "run `spe audit verify` and restore the database from backup")
        key = self._checked_key(chain)
        fields = {
            "seq": head.seq + 1, "time": utc_now(), "actor": actor, "action": action,
            "project": project, "target": target, "outcome": outcome,
            "details": canonical_json(details or {}),
        }
        digest = event_hash(head.hash, **fields, key=key if fields["seq"] >= chain.keyed_from else None)
        row = AuditEvent(**fields, prev_hash=head.hash, hash=digest)
        session.add(row)
        head.seq, head.hash = row.seq, digest
        session.flush()
        self._after_commit(session, make_checkpoint(key, chain.chain_id, row.seq, digest, row.time))
        return _to_event(row)

    def _after_commit(self, session: Session, checkpoint: Checkpoint) -> None:
        """Write the transaction's newest head as a checkpoint once it commits (never before)."""
        pending = session.info.get(_PENDING)
        if pending is None:
            session.info[_PENDING] = pending = []

            def committed(sess: Session) -> None:
                todo, pending[:] = list(pending), []
                if todo:
                    self._write_checkpoint(max(todo, key=lambda c: c.seq), todo[0].seq)

            def rolled_back(sess: Session) -> None:
                pending.clear()

            sa_event.listen(session, "after_commit", committed)
            sa_event.listen(session, "after_soft_rollback", lambda s, _t: rolled_back(s))
        pending.append(checkpoint)

    def _write_checkpoint(self, cp: Checkpoint, first_seq: int) -> None:
        """Append to the file (fsync'd); put in the object store every N events. A failure is
        logged: the event is committed, and the next checkpoint covers it."""
        path = self.checkpoint_path(cp.chain)
        line = canonical_json(asdict(cp)) + "\n"
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("audit checkpoint of seq %s not written to %s: %s", cp.seq, path, exc)
        every = _store_every()
        if setting("SPE_STORE_URL") and cp.seq // every > (first_seq - 1) // every:
            try:
                if self._store is None:
                    from lnds_spe.storage import open_store

                    self._store = open_store()
                with self._store.writer(_store_checkpoint_key(cp.chain)) as out:
                    out.write(line.encode())
            except Exception as exc:  # noqa: BLE001 (committed already: warn, never fail the change)
                log.warning("audit checkpoint of seq %s not written to the object store: %s",
                            cp.seq, exc)

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

    def verify(self) -> tuple[int, Problem | None]:
        """(number of events checked, first problem or None); see `check`."""
        report = self.check()
        return report.events, (report.problems[0] if report.problems else None)

    def check(self) -> Report:
        """Every check, each failure a named Problem; never raises for a tampered database.

        Checkpoints are read first and the rows after, in one snapshot (REPEATABLE READ on
        PostgreSQL; SQLite's write lock, so appenders wait): a checkpoint is only ever written
        after its commit, so one beyond the head read later is a cut, never a race.
        """
        with self._sessions() as session:
            chain = session.get(AuditChain, 1)
        problems: list[Problem] = []
        notes: list[str] = []
        key = self._key_for_check(chain, problems)
        checkpoints = self._read_checkpoints(chain, key, problems, notes) if chain else []
        with self._sessions() as session:
            if session.bind.dialect.name == "postgresql":
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            head = session.get(AuditHead, 1)
            head_seq, head_hash = (head.seq, head.hash) if head else (None, None)
            projects = [(r.id, r.slug, r.status) for r in session.execute(select(Project)).scalars()]
            members = [(m.id, slug, m.username, m.role) for m, slug in session.execute(
                select(Member, Project.slug).join(Project, Member.project_id == Project.id))]
            datasets = [(d.id, slug, d.name, d.location) for d, slug in session.execute(
                select(Dataset, Project.slug).join(Project, Dataset.project_id == Project.id))]
            stmt = select(AuditEvent).order_by(AuditEvent.seq)
            if head_seq is not None:
                stmt = stmt.where(AuditEvent.seq <= head_seq)
            wanted = {cp.seq for _, cp in checkpoints}
            row_hashes: dict[int, str] = {}
            registry_events: list[Event] = []
            last = [0]

            def watched() -> Iterator[Event]:
                for row in session.execute(stmt).scalars():
                    ev = _to_event(row)
                    last[0] = ev.seq
                    if ev.seq in wanted:
                        row_hashes[ev.seq] = ev.hash
                    if ev.action in REGISTRY_ACTIONS:
                        registry_events.append(ev)
                    yield ev

            stream = watched()
            found = find_chain_problem(stream, head_seq, head_hash, key=key,
                                       keyed_from=chain.keyed_from if chain else 1)
            for _ in stream:  # finish the pass: checkpoints and the registry need every row
                pass
        if head is None:
            problems.append(Problem("audit_head", "the head row (id 1) is missing: deleted outside "
                                                  "the SPE; registry writes refuse until restored"))
        if found:
            problems.append(found)
        end = head_seq if head_seq is not None else last[0]
        problems.extend(compare_checkpoints(checkpoints, row_hashes, end))
        problems.extend(reconcile(registry_events, projects, members, datasets))
        if chain and chain.keyed_from > 1:
            notes.append(f"events before seq {chain.keyed_from} predate the audit key "
                         "(plain sha256 chain)")
        problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
        return Report(end, problems, notes)

    def _key_for_check(self, chain: AuditChain | None, problems: list[Problem]) -> bytes | None:
        """The key for verify, or None with the reason added to problems."""
        if chain is None:
            problems.append(Problem("audit_chain", "the chain row (id 1) is missing: deleted "
                                                   "outside the SPE; rows are checked for their "
                                                   "links only, and writes refuse until restored"))
            return None
        try:
            return self._checked_key(chain)
        except AuditKeyMismatch as exc:
            problems.append(Problem("audit_chain", str(exc)))
        except AuditKeyMissing as exc:
            problems.append(Problem("audit key", str(exc)))
        return None

    def _read_checkpoints(self, chain: AuditChain, key: bytes | None, problems: list[Problem],
                          notes: list[str]) -> list[tuple[str, Checkpoint]]:
        """Checkpoints from the file and the object store; unreadable ones named in problems."""
        found: list[tuple[str, Checkpoint]] = []
        path = self.checkpoint_path(chain.chain_id)
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            notes.append(f"no checkpoint file {path} yet")
            lines = []
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(f"checkpoint file {path}", f"unreadable: {exc}"))
            lines = []
        good, bad = parse_checkpoints(lines, f"checkpoint file {path}", key, chain.chain_id)
        found += good
        problems += bad
        if setting("SPE_STORE_URL"):
            found += self._store_checkpoint(chain, key, problems, notes)
        return found

    def _store_checkpoint(self, chain: AuditChain, key: bytes | None, problems: list[Problem],
                          notes: list[str]) -> list[tuple[str, Checkpoint]]:
        from lnds_spe.storage import open_store

        object_key = _store_checkpoint_key(chain.chain_id)
        try:
            store = open_store()
            source = f"object store {store.location(object_key)}"
            with store.reader(object_key) as body:
                data = body.read().decode()
        except SPEError as exc:
            notes.append(f"no checkpoint in the object store yet ({exc})")
            return []
        except Exception as exc:  # noqa: BLE001 (a broken store is a finding, never a crash)
            problems.append(Problem("object store checkpoint", f"unreadable: {exc}"))
            return []
        good, bad = parse_checkpoints(data.splitlines(), source, key, chain.chain_id)
        problems += bad
        return good

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

