"""Every status, kind, vote and audit action of the airlock, by name."""

from enum import StrEnum


class RequestStatus(StrEnum):
    """Where an export request is in its life."""

    DRAFT = "draft"            # the requester is building it
    SUBMITTED = "submitted"    # frozen, checked automatically, waiting for two reviews
    RETURNED = "returned"      # sent back to the requester for changes
    APPROVED = "approved"      # every output file has two approvals
    REJECTED = "rejected"      # refused for good
    RELEASED = "released"      # the bundle exists and can be downloaded
    WITHDRAWN = "withdrawn"    # the requester gave it up


# Once a request is decided, its requester may read the checkers' comments.
DECIDED_STATUSES = frozenset({RequestStatus.RETURNED, RequestStatus.APPROVED, RequestStatus.REJECTED,
                              RequestStatus.RELEASED})


class FileKind(StrEnum):
    """What a file of a request is for."""

    OUTPUT = "output"          # released when approved
    SUPPORTING = "supporting"  # reviewed as context (code, ACRO's results.json), never released


class Vote(StrEnum):
    """A checker's verdict on one file."""

    APPROVE = "approve"
    CHANGES_REQUESTED = "changes_requested"
    REJECT = "reject"


class AuditAction(StrEnum):
    """Audit event names written by the airlock (one per change, download or refusal)."""

    CREATE = "airlock.request.create"
    EDIT = "airlock.request.edit"
    FILE_ADD = "airlock.file.add"
    FILE_REPLACE = "airlock.file.replace"
    FILE_REMOVE = "airlock.file.remove"
    SUBMIT = "airlock.request.submit"
    WITHDRAW = "airlock.request.withdraw"
    VOTE = "airlock.review.vote"
    REVIEW_SUBMIT = "airlock.review.submit"
    COMMENT = "airlock.comment"
    RETURN = "airlock.request.return"
    REJECT = "airlock.request.reject"
    APPROVE = "airlock.request.approve"
    RELEASE = "airlock.request.release"
    DOWNLOAD = "airlock.release.download"
    FILE_VIEW = "airlock.file.view"
    VIEW = "airlock.request.view"
    DENIED = "airlock.denied"
