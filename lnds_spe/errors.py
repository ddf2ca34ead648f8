"""Errors a user can cause: the CLI and the hub show their message, never a traceback."""


class SPEError(Exception):
    """Bad input or a refused action; the message names the input and what to do."""


class InvalidStatusTransition(SPEError):
    """A project status change the transition table does not allow (closing is final)."""
