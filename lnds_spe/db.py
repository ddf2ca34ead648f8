"""Database plumbing: the SQLAlchemy models, the engine, and migrations to the newest schema.

Migrations are explicit: `spe db upgrade`, `./run setup` and the hub's start run them. Every other
entry point opens the registry as it is and refuses, with one line naming `spe db upgrade`, a
schema that is behind this code (or ahead of it), so a newer command never migrates a database
under a running hub. An empty database is the one exception: it is created at the newest schema
on first use, since nothing can be running on a database with no tables.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from lnds_spe.config import redacted_url
from lnds_spe.errors import SPEError


class Base(DeclarativeBase):
    """Base of every SPE table."""


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(30), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    start_date = mapped_column(Date, nullable=False)
    end_date = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    cpu_limit: Mapped[float] = mapped_column(Float)
    mem_limit: Mapped[str] = mapped_column(String(16))
    pids_limit: Mapped[int] = mapped_column(Integer)
    home_quota: Mapped[str] = mapped_column(String(16), default="5G")
    outputs_quota: Mapped[str] = mapped_column(String(16), default="10G")
    allowed_images: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[str] = mapped_column(String(40))
    members: Mapped[list["Member"]] = relationship(back_populates="project")
    datasets: Mapped[list["Dataset"]] = relationship(back_populates="project")


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("project_id", "username", "role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    username: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    project: Mapped[Project] = relationship(back_populates="members")


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(Text)
    encrypted_size: Mapped[int] = mapped_column(BigInteger, default=0)
    plaintext_size: Mapped[int] = mapped_column(BigInteger, default=0)
    plaintext_sha256: Mapped[str] = mapped_column(String(64), default="")
    manifest: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[str] = mapped_column(String(40))
    project: Mapped[Project] = relationship(back_populates="datasets")


class AuditEvent(Base):
    """One row of the hash-chained audit log; `details` is canonical JSON text, hashed as stored."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64))
    project: Mapped[str | None] = mapped_column(String(30), index=True)
    target: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The single row naming the chain's last event: the lock appenders take, and a tail check."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditChain(Base):
    """The single row saying which chain this is and from which seq its hashes are keyed MACs.

    `mac` is the audit key's MAC of the other fields, so the row cannot be moved without the key.
    """

    __tablename__ = "audit_chain"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(32))
    keyed_from: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(16))
    mac: Mapped[str] = mapped_column(String(64))


class AirlockRequest(Base):
    """An export request: its project, requester, status and context; files, votes beside it."""

    __tablename__ = "airlock_requests"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project: Mapped[str] = mapped_column(String(30), index=True)
    author: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    title: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text, default="")
    disclosure_controls: Mapped[str] = mapped_column(Text, default="")
    round: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[str] = mapped_column(String(40))
    submitted_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    decided_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    released_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    bundle_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bundle_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AirlockFile(Base):
    """A file frozen into a request by sha256; a replaced or removed one keeps its row, marked."""

    __tablename__ = "airlock_files"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("airlock_requests.id"), index=True)
    name: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[str] = mapped_column(String(40))
    checks: Mapped[dict] = mapped_column(JSON, default=dict)
    removed_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


class AirlockVote(Base):
    """One checker's vote on one file in one review round."""

    __tablename__ = "airlock_votes"
    __table_args__ = (UniqueConstraint("file_id", "reviewer", "round"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("airlock_files.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    round: Mapped[int] = mapped_column(Integer)
    vote: Mapped[str] = mapped_column(String(32))
    time: Mapped[str] = mapped_column(String(40))


class AirlockReview(Base):
    """A checker's submitted review of one round of a request."""

    __tablename__ = "airlock_reviews"
    __table_args__ = (UniqueConstraint("request_id", "reviewer", "round"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("airlock_requests.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    round: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[str] = mapped_column(String(40))


class AirlockComment(Base):
    """A comment on a request, or on one of its files, in a review round."""

    __tablename__ = "airlock_comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("airlock_requests.id"), index=True)
    file_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    author: Mapped[str] = mapped_column(String(128))
    round: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    time: Mapped[str] = mapped_column(String(40))


class ReleasedTable(Base):
    """The project-level differencing ledger: every count table the airlock has released."""

    __tablename__ = "airlock_released_tables"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(30), index=True)
    request_id: Mapped[str] = mapped_column(String(40))
    output: Mapped[str] = mapped_column(String(500))
    variables: Mapped[list] = mapped_column(JSON)
    cells: Mapped[list] = mapped_column(JSON)
    released_at: Mapped[str] = mapped_column(String(40))


def make_engine(url: str) -> Engine:
    """An engine whose transactions serialise writers (SQLite: BEGIN IMMEDIATE, WAL)."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below take effect
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class SchemaNotCurrent(SPEError):
    """The registry's schema is not the one this code needs (behind or ahead of it)."""


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())


def head_revision() -> str:
    """The newest schema revision this code knows."""
    return _scripts().get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None for a database without the SPE's tables."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_state(current: str | None, head: str, known: set[str]) -> str:
    """"empty", "current", "behind" (an older known revision) or "ahead" (one this code lacks)."""
    if current is None:
        return "empty"
    if current == head:
        return "current"
    return "behind" if current in known else "ahead"


def schema_message(state: str, current: str | None, head: str, url: str) -> str:
    """The one line telling an admin what to do about a registry that is behind or ahead."""
    if state == "ahead":
        return (f"the registry at {url} has schema revision {current}, newer than this SPE knows "
                f"({head}): upgrade the SPE software before using it")
    return (f"the registry at {url} has schema revision {current}, this SPE needs {head}: "
            f"run `spe db upgrade` (with the hub stopped)")


def _state_of(engine: Engine) -> tuple[str, str | None, str]:
    scripts = _scripts()
    head = scripts.get_current_head()
    current = current_revision(engine)
    known = {script.revision for script in scripts.walk_revisions()}
    return schema_state(current, head, known), current, head


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`, by default the newest (idempotent)."""
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def ensure_schema(engine: Engine, url: str) -> None:
    """Create an empty database at the newest schema; refuse one behind or ahead of this code."""
    state, current, head = _state_of(engine)
    if state == "empty":
        migrate(engine)
    elif state != "current":
        raise SchemaNotCurrent(schema_message(state, current, head, url))


def upgrade_database(url: str) -> tuple[str | None, str | None]:
    """Migrate the database at `url` to the newest schema; its revisions before and after."""
    engine = make_engine(url)
    try:
        state, before, head = _state_of(engine)
        if state == "ahead":
            raise SchemaNotCurrent(schema_message(state, before, head, redacted_url(url)))
        migrate(engine)
        return before, current_revision(engine)
    finally:
        engine.dispose()
