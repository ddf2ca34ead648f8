"""Who may do what to an export request, and when. Pure: plain values in, decisions out.

The policy, in prose:
- A researcher of a project builds a request from files of the project's outputs folder. Each
  file is an output (released when approved) or a supporting file (reviewed, never released).
  The request moves only along VALID_TRANSITIONS: a draft is submitted; a submitted request is
  returned for changes, approved, rejected or withdrawn; a returned one is resubmitted or
  withdrawn; an approved one is released. Rejected, released and withdrawn are final.
- Only the requester edits, submits, resubmits or withdraws, and only a draft or returned
  request can change. Each submission opens a new review round: the files are frozen by sha256,
  and the checkers review the package afresh (a change to one file can change what another
  discloses).
- Output checkers of the project review. A checker is never the requester and never a researcher
  of the project (no one reviews their own team's work). Each checker votes on every output file
  (approve, changes requested, reject), may comment, then submits their review.
- The rule of two: a request is returned, rejected or approved only once two distinct checkers
  have submitted their reviews of the current round, and it is approved only if every output file
  holds approvals from two of them. Release needs an approved request.
- Reviews are independent: a checker sees no other checker's votes or comments of a round until
  two reviews of that round are in. The requester sees the checkers' votes and comments once the
  request is returned or decided (and those of earlier rounds always).
- A frozen file's content is read through the airlock by the project's checkers only: the
  requester has it in the workspace, and admins see requests, not data.
- The released bundle is downloaded by the requester and by airlock admins, through the hub.

Each rule is a `check_can_*` function raising a named exception with the message the user sees,
paired with a `can_*` bool for pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lnds_spe.airlock.enums import DECIDED_STATUSES, FileKind, RequestStatus, Vote
from lnds_spe.airlock.exceptions import (
    AirlockError,
    InvalidStateTransition,
    RequestNotReady,
    RequestPermissionDenied,
)
from lnds_spe.policy import bool_form

SCOPE_REQUEST = "custom:airlock:request"
SCOPE_REVIEW = "custom:airlock:review"
SCOPE_ADMIN = "custom:airlock:admin"
CHECKER_ROLE = "output_checker"
RESEARCHER_ROLE = "researcher"
APPROVALS_NEEDED = 2

S = RequestStatus
VALID_TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.WITHDRAWN}),
    S.SUBMITTED: frozenset({S.RETURNED, S.APPROVED, S.REJECTED, S.WITHDRAWN}),
    S.RETURNED: frozenset({S.SUBMITTED, S.WITHDRAWN}),
    S.APPROVED: frozenset({S.RELEASED}),
    S.REJECTED: frozenset(),
    S.RELEASED: frozenset(),
    S.WITHDRAWN: frozenset(),
}
EDITABLE = frozenset({S.DRAFT, S.RETURNED})


@dataclass(frozen=True)
class Actor:
    """A signed-in user as the policy sees them: hub scopes and roles in the request's project."""

    username: str
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return SCOPE_ADMIN in self.scopes


@dataclass(frozen=True)
class FileView:
    """One file of a request: its name, kind, frozen hash and this round's votes by checker."""

    name: str
    kind: FileKind
    sha256: str
    votes: dict[str, Vote] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestView:
    """A request as the policy sees it. `reviews_submitted`: checkers done with this round."""

    id: str
    project: str
    author: str
    status: RequestStatus
    round: int = 0
    files: tuple[FileView, ...] = ()
    reviews_submitted: frozenset[str] = frozenset()
    researchers: frozenset[str] = frozenset()  # the project's researchers, for the rule of two

    def outputs(self) -> tuple[FileView, ...]:
        return tuple(f for f in self.files if f.kind == FileKind.OUTPUT)

    def file(self, name: str) -> FileView | None:
        return next((f for f in self.files if f.name == name), None)

    def independent_reviews(self) -> frozenset[str]:
        """Submitted reviews that count: not the requester's, not a project researcher's."""
        return frozenset(r for r in self.reviews_submitted
                         if r != self.author and r not in self.researchers)

    def approvals(self, file: FileView) -> frozenset[str]:
        """Checkers whose approval of this file counts toward the rule of two."""
        counted = self.independent_reviews()
        return frozenset(r for r, v in file.votes.items() if v == Vote.APPROVE and r in counted)


def _can(check: Callable[..., None]) -> Callable[..., bool]:
    """The bool form of a check: True when it raises no AirlockError."""
    return bool_form(check, AirlockError)


def check_transition(request: RequestView, to: RequestStatus) -> None:
    """The move from the request's status to `to` is in VALID_TRANSITIONS."""
    if to not in VALID_TRANSITIONS[request.status]:
        raise InvalidStateTransition(
            f"request {request.id} is {request.status}: it cannot become {to}")


def check_can_create(actor: Actor, project: str, project_status: str) -> None:
    """A researcher of an open project, holding the request scope, starts a request."""
    if SCOPE_REQUEST not in actor.scopes:
        raise RequestPermissionDenied(
            f"{actor.username} lacks the scope {SCOPE_REQUEST}: ask an admin for it")
    if RESEARCHER_ROLE not in actor.roles:
        raise RequestPermissionDenied(
            f"{actor.username} is not a researcher of project {project}: only its researchers "
            "request exports")
    if project_status == "closed":
        raise RequestPermissionDenied(f"project {project} is closed: no new export requests")


def _check_author(actor: Actor, request: RequestView, what: str) -> None:
    if SCOPE_REQUEST not in actor.scopes or actor.username != request.author:
        raise RequestPermissionDenied(
            f"only the requester ({request.author}) may {what} request {request.id}")


def check_can_edit(actor: Actor, request: RequestView) -> None:
    """The requester changes files or context of a draft or returned request."""
    _check_author(actor, request, "change")
    if request.status not in EDITABLE:
        raise InvalidStateTransition(
            f"request {request.id} is {request.status}: only a draft or returned request changes")


def check_can_submit(actor: Actor, request: RequestView) -> None:
    """The requester submits (or resubmits) a request holding at least one output file."""
    _check_author(actor, request, "submit")
    check_transition(request, S.SUBMITTED)
    if not request.outputs():
        raise RequestNotReady(f"request {request.id} has no output file: add one before submitting")


def check_can_withdraw(actor: Actor, request: RequestView) -> None:
    """The requester gives up a request that is not yet approved or final."""
    _check_author(actor, request, "withdraw")
    check_transition(request, S.WITHDRAWN)


def check_is_checker(actor: Actor, request: RequestView) -> None:
    """An output checker of the project, who is neither the requester nor one of its researchers."""
    if SCOPE_REVIEW not in actor.scopes:
        raise RequestPermissionDenied(
            f"{actor.username} lacks the scope {SCOPE_REVIEW}: only output checkers review")
    if actor.username == request.author:
        raise RequestPermissionDenied(
            f"{actor.username} made request {request.id} and cannot review it: another checker must")
    if RESEARCHER_ROLE in actor.roles or actor.username in request.researchers:
        raise RequestPermissionDenied(
            f"{actor.username} is a researcher of project {request.project} and cannot review its "
            "requests")
    if CHECKER_ROLE not in actor.roles:
        raise RequestPermissionDenied(
            f"{actor.username} is not an output checker of project {request.project}")


def check_can_review(actor: Actor, request: RequestView) -> None:
    """A checker votes and comments on a submitted request until they submit their review."""
    check_is_checker(actor, request)
    if request.status != S.SUBMITTED:
        raise InvalidStateTransition(f"request {request.id} is {request.status}: only a submitted "
                                     "request is reviewed")
    if actor.username in request.reviews_submitted:
        raise InvalidStateTransition(f"{actor.username} already submitted a review of request "
                                     f"{request.id} in this round")


def check_can_vote(actor: Actor, request: RequestView, file_name: str) -> None:
    """A checker votes on an output file of a request they may review."""
    check_can_review(actor, request)
    file = request.file(file_name)
    if file is None:
        raise RequestNotReady(f"request {request.id} has no file {file_name!r}")
    if file.kind != FileKind.OUTPUT:
        raise RequestNotReady(f"{file_name} is a supporting file: it is read, not voted on")


def check_can_submit_review(actor: Actor, request: RequestView) -> None:
    """A checker submits their review once they voted on every output file."""
    check_can_review(actor, request)
    missing = [f.name for f in request.outputs() if actor.username not in f.votes]
    if missing:
        raise RequestNotReady(f"vote on every output file before submitting your review; "
                              f"not yet voted: {', '.join(missing)}")


def check_can_comment(actor: Actor, request: RequestView) -> None:
    """The requester comments on their open request; a checker while reviewing it."""
    if actor.username == request.author and SCOPE_REQUEST in actor.scopes:
        if request.status in (S.DRAFT, S.SUBMITTED, S.RETURNED):
            return
        raise InvalidStateTransition(f"request {request.id} is {request.status}: closed to comments")
    check_can_review(actor, request)


def _check_two_reviews(actor: Actor, request: RequestView) -> None:
    check_is_checker(actor, request)
    reviews = request.independent_reviews()
    if actor.username not in reviews:
        raise RequestNotReady(f"submit your own review of request {request.id} first")
    if len(reviews) < APPROVALS_NEEDED:
        raise RequestNotReady(f"request {request.id} has {len(reviews)} of {APPROVALS_NEEDED} "
                              "independent reviews: it is decided only after two")


def check_can_return(actor: Actor, request: RequestView) -> None:
    """A checker sends a twice-reviewed request back to its requester for changes."""
    check_transition(request, S.RETURNED)
    _check_two_reviews(actor, request)


def check_can_reject(actor: Actor, request: RequestView) -> None:
    """A checker refuses a twice-reviewed request for good."""
    check_transition(request, S.REJECTED)
    _check_two_reviews(actor, request)


def unapproved_outputs(request: RequestView) -> list[str]:
    """Output files without approvals from two distinct independent checkers."""
    return [f.name for f in request.outputs() if len(request.approvals(f)) < APPROVALS_NEEDED]


def check_can_approve(actor: Actor, request: RequestView) -> None:
    """A checker approves a twice-reviewed request whose every output has two approvals."""
    check_transition(request, S.APPROVED)
    _check_two_reviews(actor, request)
    missing = unapproved_outputs(request)
    if missing:
        raise RequestNotReady(f"every output file needs approvals from {APPROVALS_NEEDED} checkers; "
                              f"not yet: {', '.join(missing)}")


def check_can_release(actor: Actor, request: RequestView) -> None:
    """A checker of the project or an airlock admin releases an approved request."""
    check_transition(request, S.RELEASED)
    if not actor.is_admin:
        check_is_checker(actor, request)
    missing = unapproved_outputs(request)
    if missing:
        raise RequestNotReady(f"output files without two approvals cannot be released: "
                              f"{', '.join(missing)}")


def check_can_view(actor: Actor, request: RequestView) -> None:
    """The requester, an airlock admin, and (once submitted) the project's checkers see a request."""
    if actor.username == request.author or actor.is_admin:
        return
    if request.status == S.DRAFT:
        raise RequestPermissionDenied(f"request {request.id} is a draft: only its requester sees it")
    check_is_checker(actor, request)


def check_can_read_file(actor: Actor, request: RequestView) -> None:
    """Only the project's checkers read a frozen file through the airlock, and only once submitted:
    the requester reads it in the workspace, and nothing leaves unreviewed."""
    if request.status == S.DRAFT:
        raise RequestPermissionDenied(f"request {request.id} is a draft: its files are read in the "
                                      "workspace")
    check_is_checker(actor, request)


def check_can_download_release(actor: Actor, request: RequestView) -> None:
    """Only the requester and airlock admins download a released bundle."""
    if actor.username != request.author and not actor.is_admin:
        raise RequestPermissionDenied(
            f"only the requester ({request.author}) or an airlock admin downloads request "
            f"{request.id}'s release")
    if request.status != S.RELEASED:
        raise InvalidStateTransition(f"request {request.id} is {request.status}: nothing released")


def sees_round_of_others(actor: Actor, request: RequestView, round_: int) -> bool:
    """May this user read other checkers' votes and comments of this round?"""
    if round_ < request.round or actor.is_admin:
        return True
    if actor.username == request.author:
        return request.status in DECIDED_STATUSES
    return len(request.independent_reviews()) >= APPROVALS_NEEDED


can_edit = _can(check_can_edit)
can_submit = _can(check_can_submit)
can_withdraw = _can(check_can_withdraw)
can_review = _can(check_can_review)
can_vote = _can(check_can_vote)
can_submit_review = _can(check_can_submit_review)
can_comment = _can(check_can_comment)
can_return = _can(check_can_return)
can_reject = _can(check_can_reject)
can_approve = _can(check_can_approve)
can_release = _can(check_can_release)
can_view = _can(check_can_view)
can_read_file = _can(check_can_read_file)
can_download_release = _can(check_can_download_release)
