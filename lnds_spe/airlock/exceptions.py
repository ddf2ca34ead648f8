"""Named airlock errors: each carries the message the user sees."""

from lnds_spe.errors import SPEError


class AirlockError(SPEError):
    """A refused airlock action."""


class RequestNotFound(AirlockError):
    """No such request, or one this user may not see."""


class FileNotFound(AirlockError):
    """No such file in the request or in the project's outputs folder."""


class RequestPermissionDenied(AirlockError):
    """This user may not do this to this request."""


class InvalidStateTransition(AirlockError):
    """The request's status does not allow this change."""


class RequestNotReady(AirlockError):
    """The request lacks what this step needs (files, votes, two reviews)."""


class BadFile(AirlockError):
    """A file that cannot join a request (path, type, size)."""


class ReleaseIntegrityError(AirlockError):
    """A stored file or bundle no longer matches its recorded sha256."""
