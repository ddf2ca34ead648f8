"""The admin console's forms as requests: pure parsing and checking, no hub, no database.

Each form becomes a frozen request the console hands to the same registry and lifecycle calls
the `spe` command makes, so what the registry checks (slug, dates, limits, roles, names) is
checked once, with the CLI's messages. Parsing here covers what the CLI's option types do
(numbers, dates, the audit log's date bounds) and names the form field as the CLI names its
option.
"""

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from lnds_spe.audit import Event
from lnds_spe.cli import _parse_bound, _parse_date
from lnds_spe.config import DEFAULT_IMAGE
from lnds_spe.errors import SPEError
from lnds_spe.lifecycle import close_policy
from lnds_spe.storage import check_location

STATUS_OPERATIONS = {"suspend": "suspended", "resume": "active"}
AUDIT_COLUMNS = ("seq", "time", "actor", "action", "project", "target", "outcome", "details")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class NewProject:
    slug: str
    title: str
    start: date
    end: date
    description: str
    cpu_limit: float
    mem_limit: str
    pids_limit: int
    allowed_images: tuple[str, ...]
    home_quota: str
    outputs_quota: str


@dataclass(frozen=True)
class QuotaChange:
    home_quota: str | None  # None: unchanged
    outputs_quota: str | None


@dataclass(frozen=True)
class MemberChange:
    username: str
    role: str | None  # None on removal: every role


@dataclass(frozen=True)
class NewDataset:
    name: str
    location: str
    plaintext_sha256: str
    plaintext_size: int


@dataclass(frozen=True)
class AuditFilter:
    project: str | None
    user: str | None
    since: str | None  # audit time text, as `spe audit query` passes it
    until: str | None


def _field(form: Mapping[str, str], name: str) -> str:
    return (form.get(name) or "").strip()


def _number(form: Mapping[str, str], name: str, default: str, kind: type, what: str):
    text = _field(form, name) or default
    try:
        return kind(text)
    except ValueError:
        raise SPEError(f"invalid {name} {text!r}: give {what}") from None


def project_request(form: Mapping[str, str]) -> NewProject:
    """The create-project form: the `spe project create` options with its defaults."""
    images = tuple(line.strip() for line in _field(form, "image").splitlines() if line.strip())
    return NewProject(
        slug=_field(form, "slug"), title=_field(form, "title"),
        start=_parse_date(_field(form, "start"), "--start"),
        end=_parse_date(_field(form, "end"), "--end"),
        description=_field(form, "description"),
        cpu_limit=_number(form, "cpu", "1.0", float, "a number of cores, e.g. 1.5"),
        mem_limit=_field(form, "mem") or "2G",
        pids_limit=_number(form, "pids", "512", int, "a whole number of processes, e.g. 512"),
        allowed_images=images or (DEFAULT_IMAGE,),
        home_quota=_field(form, "home_quota") or "5G",
        outputs_quota=_field(form, "outputs_quota") or "10G")


def quota_request(form: Mapping[str, str]) -> QuotaChange:
    """The quota form, as `spe project update`: an empty field leaves that quota as it is."""
    return QuotaChange(_field(form, "home_quota") or None, _field(form, "outputs_quota") or None)


def member_request(form: Mapping[str, str], *, removing: bool) -> MemberChange:
    """Add (a role is required) or remove (one role, or all when none is chosen) a member."""
    username, role = _field(form, "username"), _field(form, "role")
    if not username:
        raise SPEError("a member needs a user name: fill in the user name")
    if not role and not removing:
        raise SPEError("choose a role: researcher, output_checker or project_admin")
    return MemberChange(username, role or None)


def dataset_request(form: Mapping[str, str]) -> NewDataset:
    """Attach a dataset by its store location, as `spe project dataset add` does."""
    return NewDataset(name=_field(form, "name"), location=check_location(_field(form, "location")),
                      plaintext_sha256=_field(form, "sha256"),
                      plaintext_size=_number(form, "size", "0", int, "a size in bytes"))


def status_request(operation: str) -> str:
    """The status a suspend or resume asks for."""
    if operation not in STATUS_OPERATIONS:
        raise SPEError(f"unknown operation {operation!r}: use suspend, resume or close")
    return STATUS_OPERATIONS[operation]


def close_request(form: Mapping[str, str]) -> str:
    """What happens to a closing project's outputs (archive or delete); confirmation required."""
    if _field(form, "confirm") != "close":
        raise SPEError("closing is final: type close in the confirmation box to close the project")
    return close_policy(_field(form, "outputs") or None)




def audit_filter(query: Mapping[str, str]) -> AuditFilter:
    """The audit view's filters, with `spe audit query`'s date bounds (--until is inclusive)."""
    return AuditFilter(project=_field(query, "project") or None, user=_field(query, "user") or None,
                       since=_parse_bound(_field(query, "since") or None, "--since", upper=False),
                       until=_parse_bound(_field(query, "until") or None, "--until", upper=True))


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def audit_csv(events: Iterable[Event]) -> str:
    """Events as CSV, one row each; cells a spreadsheet would run as formulas are quoted with '."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(AUDIT_COLUMNS)
    for event in events:
        writer.writerow([_cell(getattr(event, column)) for column in AUDIT_COLUMNS])
    return out.getvalue()
