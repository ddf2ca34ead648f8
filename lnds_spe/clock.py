"""Time as the SPE writes it: fixed-width ISO 8601 UTC text, which sorts as it reads.

One format for the audit log, the registry's timestamps, manifests and the IPMS log; light
enough (no database) for upload-only processes.
"""

from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_text(moment: datetime) -> str:
    """A moment as the SPE's time text; a naive moment is taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime(TIME_FORMAT)


def utc_now() -> str:
    """The current time as the SPE's time text."""
    return utc_text(datetime.now(UTC))
