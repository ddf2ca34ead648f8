"""The project registry: projects, members and their roles, datasets. Every change is audited.

Each change and its audit event commit in one transaction: both happen or neither does.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lnds_spe import policy
from lnds_spe.audit import AuditLog, utc_now
from lnds_spe.config import DEFAULT_IMAGE, database_url, redacted_url
from lnds_spe.db import Dataset, Member, Project, ensure_schema, make_engine
from lnds_spe.errors import InvalidStatusTransition, ProjectNotFound, SPEError
from lnds_spe.policy import ProjectInfo


@dataclass(frozen=True)
class MemberInfo:
    """A member of a project in one role."""

    username: str
    role: str


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset registered to a project, with what its manifest says of the plaintext."""

    name: str
    location: str
    encrypted_size: int
    plaintext_size: int
    plaintext_sha256: str
    manifest: dict = field(default_factory=dict)


def _project_info(row: Project) -> ProjectInfo:
    return ProjectInfo(row.slug, row.title, row.description, row.start_date, row.end_date,
                       row.status, row.cpu_limit, row.mem_limit, row.pids_limit,
                       tuple(row.allowed_images), row.home_quota, row.outputs_quota)


def _dataset_info(row: Dataset) -> DatasetInfo:
    return DatasetInfo(row.name, row.location, row.encrypted_size, row.plaintext_size,
                       row.plaintext_sha256, dict(row.manifest))


class Registry:
    """Projects, members and datasets in one database, with the audit log beside them."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        ensure_schema(self.engine, redacted_url(url))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.audit = AuditLog(self._sessions)

    @property
    def sessions(self) -> sessionmaker:
        """The session factory, for modules that keep their own tables in this database."""
        return self._sessions

    def _project_row(self, session: Session, slug: str) -> Project:
        row = session.execute(select(Project).where(Project.slug == slug)).scalar_one_or_none()
        if row is None:
            raise ProjectNotFound(f"unknown project {slug!r}: see `spe project list`")
        return row

    # Projects

    def create_project(self, slug: str, title: str, start_date: date, end_date: date, *,
                       actor: str, description: str = "", cpu_limit: float = 1.0,
                       mem_limit: str = "2G", pids_limit: int = 512,
                       allowed_images: Iterable[str] = (DEFAULT_IMAGE,), home_quota: str = "5G",
                       outputs_quota: str = "10G") -> ProjectInfo:
        """Create an active project; refuses a taken or invalid slug, bad dates or limits."""
        policy.check_slug(slug)
        policy.check_dates(start_date, end_date)
        policy.check_limits(cpu_limit, mem_limit, pids_limit, home_quota, outputs_quota)
        images = list(allowed_images)
        if not images or not all(images):
            raise SPEError("a project needs at least one allowed image: pass --image NAME")
        if not title.strip():
            raise SPEError("a project needs a title: pass --title TEXT")
        with self._sessions.begin() as session:
            if session.execute(select(Project.id).where(Project.slug == slug)).first():
                raise SPEError(f"project {slug!r} already exists: choose another slug")
            row = Project(slug=slug, title=title, description=description, start_date=start_date,
                          end_date=end_date, status="active", cpu_limit=cpu_limit,
                          mem_limit=mem_limit, pids_limit=pids_limit, allowed_images=images,
                          home_quota=home_quota, outputs_quota=outputs_quota,
                          created_at=utc_now())
            session.add(row)
            info = _project_info(row)
            self.audit.append_in(session, actor, "project.create", project=slug, details={
                "title": title, "start_date": start_date.isoformat(),
                "end_date": end_date.isoformat(), "cpu_limit": cpu_limit,
                "mem_limit": mem_limit, "pids_limit": pids_limit, "allowed_images": images,
                "home_quota": home_quota, "outputs_quota": outputs_quota})
        return info

    def set_quotas(self, slug: str, *, actor: str, home_quota: str | None = None,
                   outputs_quota: str | None = None) -> ProjectInfo:
        """Change a project's home and/or outputs quota; audited `project.quota`."""
        changes = {"home_quota": home_quota, "outputs_quota": outputs_quota}
        changes = {name: value for name, value in changes.items() if value is not None}
        if not changes:
            raise SPEError("nothing to change: pass --home-quota SIZE and/or --outputs-quota SIZE")
        for name, value in changes.items():
            policy.check_quota(value, name.removesuffix("_quota"))
        with self._sessions.begin() as session:
            row = self._project_row(session, slug)
            before = {name: getattr(row, name) for name in changes}
            for name, value in changes.items():
                setattr(row, name, value)
            self.audit.append_in(session, actor, "project.quota", project=slug,
                                 details={"from": before, "to": changes})
            return _project_info(row)

    def get_project(self, slug: str) -> ProjectInfo:
        """One project; ProjectNotFound if unknown."""
        with self._sessions() as session:
            return _project_info(self._project_row(session, slug))

    def list_projects(self) -> list[ProjectInfo]:
        """All projects, by slug."""
        with self._sessions() as session:
            rows = session.execute(select(Project).order_by(Project.slug)).scalars()
            return [_project_info(row) for row in rows]

    def set_status(self, slug: str, status: str, *, actor: str) -> ProjectInfo:
        """Activate, suspend or close a project as the transition table allows; refusals audited."""
        policy.check_status(status)
        with self._sessions.begin() as session:
            row = self._project_row(session, slug)
            previous = row.status
            try:
                policy.check_status_transition(previous, status)
            except InvalidStatusTransition as exc:
                refusal = InvalidStatusTransition(f"project {slug}: {exc}")
            else:
                row.status = status
                self.audit.append_in(session, actor, "project.status", project=slug,
                                     details={"from": previous, "to": status})
                return _project_info(row)
        self.audit.append(actor, "project.status", project=slug, outcome="denied",
                          details={"from": previous, "to": status, "reason": str(refusal)})
        raise refusal

    # Members

    def add_member(self, slug: str, username: str, role: str, *, actor: str) -> MemberInfo:
        """Give a user a role in a project; refuses a role they already have."""
        policy.check_username(username)
        policy.check_role(role)
        with self._sessions.begin() as session:
            project = self._project_row(session, slug)
            taken = select(Member.id).where(Member.project_id == project.id,
                                            Member.username == username, Member.role == role)
            if session.execute(taken).first():
                raise SPEError(f"{username} is already {role} of project {slug}")
            session.add(Member(project_id=project.id, username=username, role=role))
            self.audit.append_in(session, actor, "member.add", project=slug, target=username,
                                 details={"role": role})
        return MemberInfo(username, role)

    def remove_member(self, slug: str, username: str, role: str | None = None, *,
                      actor: str) -> list[MemberInfo]:
        """Take one role (or, with role None, every role) of a user in a project away."""
        if role is not None:
            policy.check_role(role)
        with self._sessions.begin() as session:
            project = self._project_row(session, slug)
            stmt = select(Member).where(Member.project_id == project.id, Member.username == username)
            if role is not None:
                stmt = stmt.where(Member.role == role)
            rows = list(session.execute(stmt).scalars())
            if not rows:
                what = f"{role} of" if role else "a member of"
                raise SPEError(f"{username} is not {what} project {slug}: "
                               f"see `spe project member list {slug}`")
            removed = [MemberInfo(r.username, r.role) for r in rows]
            for r in rows:
                session.delete(r)
            self.audit.append_in(session, actor, "member.remove", project=slug, target=username,
                                 details={"roles": sorted(m.role for m in removed)})
        return removed

    def members(self, slug: str) -> list[MemberInfo]:
        """Members of a project, by name then role."""
        with self._sessions() as session:
            project = self._project_row(session, slug)
            stmt = (select(Member).where(Member.project_id == project.id)
                    .order_by(Member.username, Member.role))
            return [MemberInfo(r.username, r.role) for r in session.execute(stmt).scalars()]

    def roles_of(self, slug: str, username: str) -> set[str]:
        """The roles a user holds in a project (empty if none, or no such project)."""
        with self._sessions() as session:
            stmt = (select(Member.role).join(Project)
                    .where(Project.slug == slug, Member.username == username))
            return set(session.execute(stmt).scalars())

    def projects_of(self, username: str, role: str | None = None) -> list[ProjectInfo]:
        """Projects in which a user holds a role (any role when None)."""
        with self._sessions() as session:
            held = select(Member.project_id).where(Member.username == username)
            if role is not None:
                held = held.where(Member.role == role)
            stmt = select(Project).where(Project.id.in_(held)).order_by(Project.slug)
            rows = session.execute(stmt).scalars()
            return [_project_info(row) for row in rows]

    # Datasets

    def add_dataset(self, slug: str, name: str, location: str, *, actor: str,
                    encrypted_size: int = 0, plaintext_size: int = 0, plaintext_sha256: str = "",
                    manifest: dict | None = None) -> DatasetInfo:
        """Register a dataset (where it is stored, and its manifest) to a project."""
        policy.check_dataset_name(name)
        if not location:
            raise SPEError("a dataset needs a location in the object store: pass --location URL")
        with self._sessions.begin() as session:
            project = self._project_row(session, slug)
            row = Dataset(project_id=project.id, name=name, location=location,
                          encrypted_size=encrypted_size, plaintext_size=plaintext_size,
                          plaintext_sha256=plaintext_sha256, manifest=manifest or {},
                          created_at=utc_now())
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise SPEError(f"project {slug} already has a dataset {name!r}: "
                               "choose another name") from None
            self.audit.append_in(session, actor, "dataset.add", project=slug, target=name,
                                 details={"location": location, "plaintext_sha256": plaintext_sha256,
                                          "plaintext_size": plaintext_size})
            return _dataset_info(row)

    def replace_dataset_object(self, slug: str, name: str, location: str, manifest: dict, *,
                               actor: str, details: dict) -> DatasetInfo:
        """Point a dataset at a re-encrypted object and its manifest; audited `dataset.rekey`."""
        with self._sessions.begin() as session:
            project = self._project_row(session, slug)
            row = session.execute(select(Dataset).where(
                Dataset.project_id == project.id, Dataset.name == name)).scalar_one_or_none()
            if row is None:
                raise SPEError(f"project {slug} has no dataset {name!r}")
            previous = row.location
            row.location, row.manifest = location, manifest
            row.encrypted_size = manifest["header_size"] + manifest["payload_size"]
            self.audit.append_in(session, actor, "dataset.rekey", project=slug, target=name,
                                 details={**details, "location": location, "previous": previous})
            return _dataset_info(row)

    def datasets(self, slug: str) -> list[DatasetInfo]:
        """Datasets of a project, by name."""
        with self._sessions() as session:
            project = self._project_row(session, slug)
            stmt = select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.name)
            return [_dataset_info(row) for row in session.execute(stmt).scalars()]


def open_registry(url: str | None = None) -> Registry:
    """The registry at `url`, else $SPE_DATABASE_URL, else SQLite in the state dir."""
    return Registry(url or database_url())
