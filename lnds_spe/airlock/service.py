"""The airlock's business logic: every change is checked against the policy, written with its
audit event in one transaction, and every refusal is audited too. HTTP and pages sit on top."""

from __future__ import annotations

import os
import secrets
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lnds_spe import __version__
from lnds_spe.airlock import policies, records
from lnds_spe.airlock.enums import AuditAction, FileKind, RequestStatus, Vote
from lnds_spe.airlock.exceptions import (
    AirlockError,
    BadFile,
    FileNotFound,
    ReleaseIntegrityError,
    RequestNotFound,
)
from lnds_spe.airlock.policies import Actor, FileView, RequestView
from lnds_spe.airlock.store import FileStore, file_sha256
from lnds_spe.audit import utc_now
from lnds_spe.db import (
    AirlockComment,
    AirlockFile,
    AirlockRequest,
    AirlockReview,
    AirlockVote,
    Member,
    Project,
    ReleasedTable,
)
from lnds_spe.projects import Registry
from lnds_spe.sdc import check_file
from lnds_spe.sdc.config import SDCConfig

MAX_TEXT = 10_000
RECORD_NAME = "disclosure-record.json"
ACRO_RESULTS_NAME = "results.json"


@dataclass(frozen=True)
class Caller:
    """Who is asking, as the hub vouches for them: user name and the token's scopes."""

    username: str
    scopes: frozenset[str]


def _text(value: str, what: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    """Free text from a user: trimmed, bounded, present when required."""
    value = (value or "").strip()
    if required and not value:
        raise BadFile(f"the {what} is empty: write one")
    if len(value) > limit:
        raise BadFile(f"the {what} is {len(value)} characters, above the limit of {limit}: shorten it")
    return value


class Airlock:
    """Export requests of every project, kept in the registry database beside the audit log."""

    def __init__(self, registry: Registry, state_dir: Path, sdc_config: SDCConfig | None = None):
        self.registry = registry
        self.audit = registry.audit
        self._sessions = registry.sessions
        self.outputs_root = Path(state_dir) / "outputs"
        self.store = FileStore(Path(state_dir) / "airlock" / "files")
        self.releases = Path(state_dir) / "airlock" / "releases"
        self.config = sdc_config or SDCConfig()

    # --- reading the database into policy values ------------------------------------------

    @staticmethod
    def _roles(session: Session, project: str, username: str) -> frozenset[str]:
        stmt = select(Member.role).join(Project).where(Project.slug == project,
                                                        Member.username == username)
        return frozenset(session.execute(stmt).scalars())

    @staticmethod
    def _researchers(session: Session, project: str) -> frozenset[str]:
        stmt = select(Member.username).join(Project).where(Project.slug == project,
                                                            Member.role == policies.RESEARCHER_ROLE)
        return frozenset(session.execute(stmt).scalars())

    @staticmethod
    def _files(session: Session, request_id: str) -> list[AirlockFile]:
        stmt = (select(AirlockFile).where(AirlockFile.request_id == request_id,
                                          AirlockFile.removed_at.is_(None))
                .order_by(AirlockFile.name))
        return list(session.execute(stmt).scalars())

    def _view(self, session: Session, row: AirlockRequest) -> RequestView:
        files = self._files(session, row.id)
        votes: dict[int, dict[str, Vote]] = {f.id: {} for f in files}
        if files:
            stmt = select(AirlockVote).where(AirlockVote.file_id.in_(list(votes)),
                                             AirlockVote.round == row.round)
            for vote in session.execute(stmt).scalars():
                votes[vote.file_id][vote.reviewer] = Vote(vote.vote)
        reviews = select(AirlockReview.reviewer).where(AirlockReview.request_id == row.id,
                                                       AirlockReview.round == row.round)
        return RequestView(
            id=row.id, project=row.project, author=row.author, status=RequestStatus(row.status),
            round=row.round,
            files=tuple(FileView(f.name, FileKind(f.kind), f.sha256, votes[f.id]) for f in files),
            reviews_submitted=frozenset(session.execute(reviews).scalars()),
            researchers=self._researchers(session, row.project))

    def _actor(self, session: Session, caller: Caller, project: str) -> Actor:
        return Actor(caller.username, caller.scopes, self._roles(session, project, caller.username))

    @staticmethod
    def _locked(session: Session, request_id: str) -> AirlockRequest:
        stmt = select(AirlockRequest).where(AirlockRequest.id == request_id).with_for_update()
        row = session.execute(stmt).scalar_one_or_none()
        if row is None:
            raise RequestNotFound(f"there is no export request {request_id!r}: see your list of "
                                  "requests")
        return row

    # --- the one way every change is made -------------------------------------------------

    def _refused(self, caller: Caller, action: AuditAction, request_id: str | None,
                 project: str | None, error: AirlockError) -> None:
        """Write the audit event of a refusal in its own transaction."""
        self.audit.append(caller.username, AuditAction.DENIED, project=project, target=request_id,
                          outcome="denied", details={"action": str(action), "reason": str(error),
                                                     "error": type(error).__name__})

    def _change(self, caller: Caller, request_id: str, action: AuditAction,
                check: Callable[[Actor, RequestView], None],
                apply: Callable[[Session, AirlockRequest, RequestView], dict[str, Any]]) -> None:
        """Lock the request, check the policy, apply, audit; a refusal is audited and re-raised.

        `apply` returns the audit details; an `audit_action` key among them names another action.
        """
        project = None
        try:
            with self._sessions.begin() as session:
                row = self._locked(session, request_id)
                project = row.project
                view = self._view(session, row)
                check(self._actor(session, caller, row.project), view)
                details = apply(session, row, view)
                row.updated_at = utc_now()
                action = details.pop("audit_action", action)
                self.audit.append_in(session, caller.username, action, project=row.project,
                                     target=row.id, details=details)
        except AirlockError as error:
            self._refused(caller, action, request_id, project, error)
            raise

    # --- the requester -----------------------------------------------------------------------

    def create(self, caller: Caller, project: str, title: str, purpose: str = "",
               disclosure_controls: str = "") -> dict:
        """A new draft request in a project the caller researches."""
        try:
            title = _text(title, "request's title (what is exported)", required=True, limit=200)
            purpose = _text(purpose, "purpose (why it is exported)")
            disclosure_controls = _text(disclosure_controls, "disclosure controls applied")
            with self._sessions.begin() as session:
                status = session.execute(select(Project.status).where(Project.slug == project)).scalar()
                if status is None:
                    raise RequestNotFound(f"there is no project {project!r}")
                policies.check_can_create(self._actor(session, caller, project), project, status)
                now = utc_now()
                row = AirlockRequest(id=f"{project}-{secrets.token_hex(4)}", project=project,
                                     author=caller.username, status=RequestStatus.DRAFT, title=title,
                                     purpose=purpose, disclosure_controls=disclosure_controls,
                                     round=0, created_at=now, updated_at=now)
                session.add(row)
                self.audit.append_in(session, caller.username, AuditAction.CREATE, project=project,
                                     target=row.id, details={"title": title})
        except AirlockError as error:
            self._refused(caller, AuditAction.CREATE, None, project, error)
            raise
        return self.detail(caller, row.id)

    def edit(self, caller: Caller, request_id: str, *, title: str | None = None,
             purpose: str | None = None, disclosure_controls: str | None = None) -> dict:
        """Change the context of a draft or returned request."""

        def apply(session, row, view):
            if title is not None:
                row.title = _text(title, "request's title", required=True, limit=200)
            if purpose is not None:
                row.purpose = _text(purpose, "purpose")
            if disclosure_controls is not None:
                row.disclosure_controls = _text(disclosure_controls, "disclosure controls applied")
            return {"title": row.title}

        self._change(caller, request_id, AuditAction.EDIT, policies.check_can_edit, apply)
        return self.detail(caller, request_id)

    def add_file(self, caller: Caller, request_id: str, name: str,
                 kind: FileKind | str = FileKind.OUTPUT) -> dict:
        """Freeze a file of the project's outputs folder into the request (a new copy replaces)."""
        try:
            kind = FileKind(kind)
        except ValueError:
            error = BadFile(f"unknown file kind {kind!r}: use output or supporting")
            self._refused(caller, AuditAction.FILE_ADD, request_id, None, error)
            raise error from None

        def apply(session, row, view):
            frozen = self.store.freeze(self.outputs_root / row.project, name)
            details = {"file": frozen.name, "kind": str(kind), "sha256": frozen.sha256,
                       "size": frozen.size}
            current = next((f for f in self._files(session, row.id) if f.name == frozen.name), None)
            if current is not None:
                if (current.sha256, current.kind) == (frozen.sha256, kind):
                    return {**details, "unchanged": True}
                current.removed_at = utc_now()
                details.update(replaced_sha256=current.sha256, audit_action=AuditAction.FILE_REPLACE)
            # The file's own checks at once, so the requester sees findings before submitting;
            # submission runs them again with ACRO's verdicts and differencing.
            checks = {**check_file(self.store.path(frozen.sha256, frozen.name), self.config),
                      "path": frozen.name}
            session.add(AirlockFile(request_id=row.id, name=frozen.name, kind=kind,
                                    sha256=frozen.sha256, size=frozen.size, added_by=caller.username,
                                    added_at=utc_now(), checks=checks))
            return {**details, "checks": checks["status"]}

        self._change(caller, request_id, AuditAction.FILE_ADD, policies.check_can_edit, apply)
        return self.detail(caller, request_id)

    def remove_file(self, caller: Caller, request_id: str, name: str) -> dict:
        """Take a file out of a draft or returned request."""

        def apply(session, row, view):
            current = next((f for f in self._files(session, row.id) if f.name == name), None)
            if current is None:
                raise FileNotFound(f"request {row.id} has no file {name!r}")
            current.removed_at = utc_now()
            return {"file": name, "sha256": current.sha256}

        self._change(caller, request_id, AuditAction.FILE_REMOVE, policies.check_can_edit,
                            apply)
        return self.detail(caller, request_id)

    def submit(self, caller: Caller, request_id: str) -> dict:
        """Submit (or resubmit): a new review round, automatic checks stored with every file."""

        def apply(session, row, view):
            row.round += 1
            row.status = RequestStatus.SUBMITTED
            row.submitted_at = utc_now()
            verdicts = self._automatic_checks(session, row)
            return {"round": row.round,
                    "files": {name: v["status"] for name, v in sorted(verdicts.items())}}

        self._change(caller, request_id, AuditAction.SUBMIT, policies.check_can_submit, apply)
        return self.detail(caller, request_id)

    def withdraw(self, caller: Caller, request_id: str) -> dict:
        """The requester gives the request up."""

        def apply(session, row, view):
            row.status = RequestStatus.WITHDRAWN
            row.decided_at = utc_now()
            return {"from": str(view.status)}

        self._change(caller, request_id, AuditAction.WITHDRAW, policies.check_can_withdraw,
                            apply)
        return self.detail(caller, request_id)

    # --- automatic checks ------------------------------------------------------------------

    def _automatic_checks(self, session: Session, row: AirlockRequest) -> dict[str, dict]:
        """check_file on every frozen file, ACRO's verdicts when a results.json is supplied, and
        differencing of every output table against the project's released tables."""
        files = self._files(session, row.id)
        paths = {f.name: self.store.verified_path(f.sha256, f.name) for f in files}
        acro = {}
        for f in files:
            if Path(f.name).name == ACRO_RESULTS_NAME:
                acro = records.acro_results_by_file(paths[f.name].read_bytes())
        tables = [t for f in files if f.kind == FileKind.OUTPUT
                  if (t := records.count_table_from_csv(f.name, paths[f.name])) is not None]
        differencing = records.differencing_by_file(tables, self._released_tables(session, row.project),
                                                    self.config.safe_threshold)
        verdicts = {}
        for f in files:
            verdict = check_file(paths[f.name], self.config)
            verdict["path"] = f.name
            if Path(f.name).name in acro:
                verdict["acro"] = acro[Path(f.name).name]
            if differencing.get(f.name):
                verdict["differencing"] = differencing[f.name]
                others = sorted({d["combined_with"] for d in verdict["differencing"]})
                verdict["reasons"].append(f"differencing: combined with {', '.join(others)} it "
                                          "exposes cells under the threshold")
                verdict["status"] = "fail"
            f.checks = verdict
            verdicts[f.name] = verdict
        return verdicts

    @staticmethod
    def _released_tables(session: Session, project: str) -> list:
        stmt = select(ReleasedTable).where(ReleasedTable.project == project).order_by(ReleasedTable.id)
        return [records.table_from_ledger(f"{r.request_id}/{r.output}", r.variables, r.cells)
                for r in session.execute(stmt).scalars()]

    # --- the checkers --------------------------------------------------------------------------

    def vote(self, caller: Caller, request_id: str, file_name: str, vote: Vote | str) -> dict:
        """A checker's vote on one output file in this round (a later vote replaces it)."""
        try:
            vote = Vote(vote)
        except ValueError:
            error = BadFile(f"unknown vote {vote!r}: use approve, changes_requested or reject")
            self._refused(caller, AuditAction.VOTE, request_id, None, error)
            raise error from None

        def apply(session, row, view):
            file = next(f for f in self._files(session, row.id) if f.name == file_name)
            stmt = select(AirlockVote).where(AirlockVote.file_id == file.id,
                                             AirlockVote.reviewer == caller.username,
                                             AirlockVote.round == row.round)
            existing = session.execute(stmt).scalar_one_or_none()
            if existing is None:
                session.add(AirlockVote(file_id=file.id, reviewer=caller.username, round=row.round,
                                        vote=vote, time=utc_now()))
            else:
                existing.vote, existing.time = vote, utc_now()
            return {"file": file_name, "sha256": file.sha256, "vote": str(vote), "round": row.round}

        self._change(caller, request_id, AuditAction.VOTE,
                            lambda actor, view: policies.check_can_vote(actor, view, file_name), apply)
        return self.detail(caller, request_id)

    def submit_review(self, caller: Caller, request_id: str) -> dict:
        """A checker finishes their review of this round."""

        def apply(session, row, view):
            session.add(AirlockReview(request_id=row.id, reviewer=caller.username, round=row.round,
                                      submitted_at=utc_now()))
            mine = {f.name: str(f.votes[caller.username]) for f in view.outputs()}
            return {"round": row.round, "votes": mine}

        self._change(caller, request_id, AuditAction.REVIEW_SUBMIT,
                            policies.check_can_submit_review, apply)
        return self.detail(caller, request_id)

    def comment(self, caller: Caller, request_id: str, text: str, file_name: str | None = None) -> dict:
        """A comment on the request or one of its files."""

        def apply(session, row, view):
            body = _text(text, "comment", required=True)
            if file_name is not None and view.file(file_name) is None:
                raise FileNotFound(f"request {row.id} has no file {file_name!r}")
            session.add(AirlockComment(request_id=row.id, file_name=file_name, author=caller.username,
                                       round=row.round, text=body, time=utc_now()))
            return {"file": file_name, "round": row.round, "length": len(body)}

        self._change(caller, request_id, AuditAction.COMMENT, policies.check_can_comment, apply)
        return self.detail(caller, request_id)

    def _decide(self, caller: Caller, request_id: str, action: AuditAction, to: RequestStatus,
                check: Callable[[Actor, RequestView], None]) -> dict:
        def apply(session, row, view):
            row.status, row.decided_at = to, utc_now()
            return {"round": row.round, "reviews": sorted(view.independent_reviews())}

        self._change(caller, request_id, action, check, apply)
        return self.detail(caller, request_id)

    def return_request(self, caller: Caller, request_id: str) -> dict:
        """Send a twice-reviewed request back to its requester for changes."""
        return self._decide(caller, request_id, AuditAction.RETURN, RequestStatus.RETURNED,
                            policies.check_can_return)

    def reject(self, caller: Caller, request_id: str) -> dict:
        """Refuse a twice-reviewed request for good."""
        return self._decide(caller, request_id, AuditAction.REJECT, RequestStatus.REJECTED,
                            policies.check_can_reject)

    def approve(self, caller: Caller, request_id: str) -> dict:
        """Approve a request whose every output has two independent approvals."""
        return self._decide(caller, request_id, AuditAction.APPROVE, RequestStatus.APPROVED,
                            policies.check_can_approve)

    # --- release -------------------------------------------------------------------------------

    def release(self, caller: Caller, request_id: str) -> dict:
        """Write the bundle (approved outputs + disclosure record) and mark the request released.

        The bundle is written under a temporary name and renamed into place before the status
        changes in the same transaction as the ledger rows and the audit event: a crash leaves the
        request approved (a later release rewrites the bundle) or released with its bundle whole.
        """

        def apply(session, row, view):
            released_at = utc_now()
            files = self._files(session, row.id)
            outputs = [f for f in files if f.kind == FileKind.OUTPUT]
            paths = {f.name: self.store.verified_path(f.sha256, f.name) for f in outputs}
            record = self._disclosure_record(session, row, view, files, caller, released_at)
            bundle = self._write_bundle(row.id, paths, record)
            row.status, row.released_at = RequestStatus.RELEASED, released_at
            row.bundle_sha256, row.bundle_size = file_sha256(bundle), bundle.stat().st_size
            for f in outputs:
                table = records.count_table_from_csv(f.name, paths[f.name])
                if table is not None:
                    session.add(ReleasedTable(project=row.project, request_id=row.id, output=f.name,
                                              variables=list(table.variables),
                                              cells=records.ledger_cells(table),
                                              released_at=released_at))
            return {"bundle_sha256": row.bundle_sha256,
                    "files": {f.name: f.sha256 for f in outputs}}

        self._change(caller, request_id, AuditAction.RELEASE, policies.check_can_release, apply)
        return self.detail(caller, request_id)

    def _disclosure_record(self, session: Session, row: AirlockRequest, view: RequestView,
                           files: list[AirlockFile], caller: Caller, released_at: str) -> dict:
        votes = select(AirlockVote).where(AirlockVote.file_id.in_([f.id for f in files]),
                                          AirlockVote.round == row.round)
        by_file: dict[int, list[dict]] = {f.id: [] for f in files}
        for v in session.execute(votes.order_by(AirlockVote.reviewer)).scalars():
            by_file[v.file_id].append({"checker": v.reviewer, "vote": v.vote, "time": v.time})
        reviews = session.execute(select(AirlockReview).where(AirlockReview.request_id == row.id)
                                  .order_by(AirlockReview.round, AirlockReview.reviewer)).scalars()
        comments = session.execute(select(AirlockComment).where(AirlockComment.request_id == row.id)
                                   .order_by(AirlockComment.id)).scalars()
        return records.disclosure_record(
            request={"id": row.id, "project": row.project, "requester": row.author,
                     "title": row.title, "purpose": row.purpose,
                     "disclosure_controls": row.disclosure_controls, "rounds": row.round,
                     "created_at": row.created_at, "submitted_at": row.submitted_at,
                     "approved_at": row.decided_at},
            files=[{"name": f.name, "kind": f.kind, "sha256": f.sha256, "size": f.size,
                    "released": f.kind == FileKind.OUTPUT, "automatic_checks": f.checks,
                    "votes": by_file[f.id]} for f in files],
            reviews=[{"checker": r.reviewer, "round": r.round, "submitted_at": r.submitted_at}
                     for r in reviews],
            comments=[{"author": c.author, "file": c.file_name, "round": c.round, "text": c.text,
                       "time": c.time} for c in comments],
            rules=self.config.as_dict(), released_by=caller.username, released_at=released_at,
            software_version=__version__)

    def discard_unfinished(self) -> list[Path]:
        """At start-up: delete bundles and stored copies a crash left half-written (temporary
        names only; nothing the database refers to). Returns what was deleted."""
        leftovers = [*self.releases.glob(".*.tmp"), *self.store.root.glob(".incoming-*")]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return leftovers

    def bundle_path(self, request_id: str) -> Path:
        """Where a request's released bundle lives."""
        return self.releases / f"{request_id}.zip"

    def _write_bundle(self, request_id: str, paths: dict[str, Path], record: dict) -> Path:
        """outputs/<name> for each approved output plus the record, written whole, then renamed."""
        self.releases.mkdir(parents=True, exist_ok=True)
        target = self.bundle_path(request_id)
        fd, temporary = tempfile.mkstemp(dir=self.releases, prefix=f".{request_id}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
                    for name, path in sorted(paths.items()):
                        bundle.write(path, f"outputs/{name}")
                    bundle.writestr(RECORD_NAME, records.canonical_record_text(record))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(self.releases, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return target

    def open_release(self, caller: Caller, request_id: str) -> Path:
        """The released bundle for the requester or an admin, checked against its hash; audited."""
        result: dict[str, Path] = {}

        def apply(session, row, view):
            path = self.bundle_path(row.id)
            if not path.exists() or file_sha256(path) != row.bundle_sha256:
                raise ReleaseIntegrityError(f"the bundle of request {row.id} is missing or does not "
                                            "match its recorded sha256: tell an admin")
            result["path"] = path
            return {"bundle_sha256": row.bundle_sha256}

        self._change(caller, request_id, AuditAction.DOWNLOAD, policies.check_can_download_release,
                     apply)
        return result["path"]

    def open_file(self, caller: Caller, request_id: str, file_name: str) -> Path:
        """A frozen file of a request, for its checkers; audited."""
        result: dict[str, Path] = {}

        def apply(session, row, view):
            file = view.file(file_name)
            if file is None:
                raise FileNotFound(f"request {row.id} has no file {file_name!r}")
            result["path"] = self.store.verified_path(file.sha256, file.name)
            return {"file": file_name, "sha256": file.sha256}

        self._change(caller, request_id, AuditAction.FILE_VIEW, policies.check_can_read_file, apply)
        return result["path"]

    # --- what a user sees ---------------------------------------------------------------------

    def list_requests(self, caller: Caller) -> list[dict]:
        """Requests the caller made, may review, or (admins) all; newest first."""
        with self._sessions() as session:
            rows = session.execute(select(AirlockRequest).order_by(AirlockRequest.created_at.desc()))
            listed = []
            for row in rows.scalars():
                actor = self._actor(session, caller, row.project)
                view = self._view(session, row)
                if policies.can_view(actor, view):
                    listed.append({**_summary(row), "files": len(view.files),
                                   "reviews": len(view.independent_reviews()),
                                   "to_review": policies.can_review(actor, view)})
            return listed

    def detail(self, caller: Caller, request_id: str) -> dict:
        """One request as this caller may see it: votes and comments filtered by the policy."""
        with self._sessions() as session:
            row = session.get(AirlockRequest, request_id)
            if row is None:
                raise RequestNotFound(f"there is no export request {request_id!r}")
            view = self._view(session, row)
            actor = self._actor(session, caller, row.project)
            try:
                policies.check_can_view(actor, view)
            except AirlockError as error:
                session.close()  # end this read first: on SQLite it would block the audit's write
                self._refused(caller, AuditAction.VIEW, request_id, view.project, error)
                raise
            files = self._files(session, row.id)
            sees_others = policies.sees_round_of_others(actor, view, row.round)
            comments = session.execute(select(AirlockComment)
                                       .where(AirlockComment.request_id == row.id)
                                       .order_by(AirlockComment.id)).scalars()
            return {
                **_summary(row),
                "purpose": row.purpose,
                "disclosure_controls": row.disclosure_controls,
                "reviews_submitted": sorted(view.independent_reviews()) if sees_others else
                [r for r in view.reviews_submitted if r == caller.username],
                "review_count": len(view.independent_reviews()),
                "files": [{
                    "name": f.name, "kind": f.kind, "sha256": f.sha256, "size": f.size,
                    "added_by": f.added_by, "added_at": f.added_at, "checks": f.checks,
                    "votes": {who: str(v) for who, v in fv.votes.items()
                              if who == caller.username or sees_others},
                } for f, fv in zip(files, view.files, strict=True)],
                "comments": [{"author": c.author, "file": c.file_name, "round": c.round,
                              "text": c.text, "time": c.time} for c in comments
                             if c.author in (caller.username, row.author)
                             or policies.sees_round_of_others(actor, view, c.round)],
                "can": {name: check(actor, view) for name, check in _PAGE_CHECKS.items()},
            }


def _summary(row: AirlockRequest) -> dict:
    return {"id": row.id, "project": row.project, "author": row.author, "status": row.status,
            "title": row.title, "round": row.round, "created_at": row.created_at,
            "updated_at": row.updated_at, "submitted_at": row.submitted_at,
            "decided_at": row.decided_at, "released_at": row.released_at,
            "bundle_sha256": row.bundle_sha256}


_PAGE_CHECKS = {
    "edit": policies.can_edit, "submit": policies.can_submit, "withdraw": policies.can_withdraw,
    "review": policies.can_review, "submit_review": policies.can_submit_review,
    "comment": policies.can_comment, "return": policies.can_return, "reject": policies.can_reject,
    "approve": policies.can_approve, "release": policies.can_release,
    "read_files": policies.can_read_file, "download": policies.can_download_release,
}
