"""Errors a user can cause: the CLI and the hub show their message, never a traceback.

Every distinct failure is its own class under SPEError, so a caller catches what it means
(`except ProjectNotFound`) while `except SPEError` still catches them all.
"""


class SPEError(Exception):
    """Bad input or a refused action; the message names the input and what to do."""


class InvalidStatusTransition(SPEError):
    """A project status change the transition table does not allow (closing is final)."""


class ProjectNotFound(SPEError):
    """No project in the registry has this slug."""


class SpawnDenied(SPEError):
    """The policy refuses to start this workspace or review server; the message says why."""


class DatasetUnavailable(SPEError):
    """A dataset of a project cannot be prepared for its workspace on this hub."""
