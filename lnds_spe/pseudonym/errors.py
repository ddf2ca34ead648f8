"""Named errors of the pseudonymisation service; messages never quote an identifier or a pseudonym."""

from lnds_spe.errors import SPEError


class PseudonymError(SPEError):
    """Bad input or a refused pseudonymisation action."""


class KeyStoreError(PseudonymError):
    """The master key file is missing, unreadable, readable by others or not a key."""


class MalformedIdentifier(PseudonymError):
    """An identifier (or pseudonym to reverse) is empty, too long or outside the token's format."""


class DomainTooSmall(PseudonymError):
    """FF1 asked for an identifier space below the 1e6 that NIST SP 800-38G requires."""


class EmptyInput(PseudonymError):
    """A CSV with no such column, or a column with no values."""


class InvalidToken(PseudonymError):
    """A project token that is malformed, forged, sealed by another service or of another project."""


class NotReversible(PseudonymError):
    """Re-identification asked for a token whose method is non-reversible."""


class RoleDenied(PseudonymError):
    """The caller lacks the role the action needs (e.g. re-identification)."""


class ProofError(PseudonymError):
    """An OPRF input or element is not a valid ristretto255 encoding."""


class LinkageSchemaError(PseudonymError):
    """A linkage schema that is not a clkhash v3 schema this encoder supports."""
