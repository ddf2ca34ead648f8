"""Pure decisions: what is a valid project, member or dataset; who may start what. No I/O."""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from lnds_spe.errors import InvalidStatusTransition, SpawnDenied, SPEError

ROLES = ("researcher", "output_checker", "project_admin")
STATUSES = ("active", "suspended", "closed")
# Every status change a project may make; closing is final (its data is archived or deleted).
STATUS_TRANSITIONS = {
    "active": frozenset({"suspended", "closed"}),
    "suspended": frozenset({"active", "closed"}),
    "closed": frozenset(),
}
# Limits a container engine and the registry's columns hold: Linux's PID_MAX_LIMIT, 4 TiB.
MAX_CPU = 1024.0
MAX_PIDS = 4_194_304
MAX_MEM_BYTES = 4 * 1024**4
_MEM_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}
# A home volume or outputs folder: at least room for a small filesystem, at most 4 TiB.
MIN_QUOTA_BYTES = 16 * 1024**2
MAX_QUOTA_BYTES = 4 * 1024**4

# JupyterHub server names are at most 30 lowercase characters; a project slug names a server.
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$|^[a-z]$")
_DATASET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,127}$")
_MEMORY = re.compile(r"^[1-9][0-9]*[KMG]$")

# The named server an output checker reviews export requests in; no project may take its name.
REVIEW_SERVER = "review"
RESERVED_SERVER_NAMES = frozenset({REVIEW_SERVER})


@dataclass(frozen=True)
class ProjectInfo:
    """A project as the rest of the SPE sees it: plain values, no database session."""

    slug: str
    title: str
    description: str
    start_date: date
    end_date: date
    status: str
    cpu_limit: float
    mem_limit: str
    pids_limit: int
    allowed_images: tuple[str, ...]
    home_quota: str = "5G"
    outputs_quota: str = "10G"


def check_slug(slug: str) -> str:
    """A project slug: 1-30 of a-z, 0-9 and '-', starting with a letter, not ending with '-'."""
    if not _SLUG.match(slug or ""):
        raise SPEError(
            f"invalid project slug {slug!r}: use 1-30 lowercase letters, digits or '-', "
            "starting with a letter (it names the JupyterHub server)"
        )
    if slug in RESERVED_SERVER_NAMES:
        raise SPEError(f"project slug {slug!r} is reserved (it names the output checkers' review "
                       "server): choose another")
    return slug


def check_dates(start: date, end: date) -> None:
    """A project must end on or after the day it starts."""
    if end < start:
        raise SPEError(f"end date {end.isoformat()} is before start date {start.isoformat()}: "
                       "give an end date on or after the start")


def check_role(role: str) -> str:
    """One of the SPE's roles."""
    if role not in ROLES:
        raise SPEError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def check_status(status: str) -> str:
    """One of the project statuses."""
    if status not in STATUSES:
        raise SPEError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    return status


def check_status_transition(current: str, new: str) -> str:
    """A status change the transition table allows; InvalidStatusTransition names why not."""
    check_status(new)
    if new == current:
        raise InvalidStatusTransition(f"the project is already {new}")
    if new not in STATUS_TRANSITIONS[current]:
        final = ": closing a project is final" if current == "closed" else ""
        raise InvalidStatusTransition(f"a {current} project cannot become {new}{final}")
    return new


def check_username(username: str) -> str:
    """A user name as JupyterHub keeps it (lowercase), at most 128 characters (audit columns)."""
    if not _USERNAME.match(username or ""):
        hint = (f" (JupyterHub lowercases names: use {username.lower()!r})"
                if _USERNAME.match((username or "").lower()) else "")
        raise SPEError(f"invalid user name {username!r}: use 1-128 lowercase letters, digits "
                       f"and . _ @ -{hint}")
    return username


def check_dataset_name(name: str) -> str:
    """A dataset name: it becomes the directory ~/data/<name> in the workspace."""
    if not _DATASET.match(name or ""):
        raise SPEError(f"invalid dataset name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def size_bytes(size: str) -> int:
    """Bytes in a memory limit or quota such as '5G' (K, M, G are powers of 1024); 0 when
    malformed."""
    return int(size[:-1]) * _MEM_UNITS[size[-1]] if _MEMORY.match(size or "") else 0


def check_quota(quota: str, what: str) -> str:
    """A size limit of a home volume or an outputs folder: 16M to 4096G."""
    if not MIN_QUOTA_BYTES <= size_bytes(quota) <= MAX_QUOTA_BYTES:
        raise SPEError(f"invalid {what} quota {quota!r}: use a number with K, M or G, from 16M "
                       "to 4096G, e.g. 5G")
    return quota


def check_limits(cpu_limit: float, mem_limit: str, pids_limit: int, home_quota: str = "5G",
                 outputs_quota: str = "10G") -> None:
    """Resource limits a container engine accepts, and the home and outputs quotas."""
    if not (math.isfinite(cpu_limit) and 0 < cpu_limit <= MAX_CPU):
        raise SPEError(f"invalid CPU limit {cpu_limit}: give a number of cores above 0 and at "
                       f"most {MAX_CPU:g}, e.g. 1.5")
    if not 0 < size_bytes(mem_limit) <= MAX_MEM_BYTES:
        raise SPEError(f"invalid memory limit {mem_limit!r}: use a number with K, M or G, at "
                       "most 4096G, e.g. 4G")
    if not 16 <= pids_limit <= MAX_PIDS:
        raise SPEError(f"invalid pids limit {pids_limit}: give 16 to {MAX_PIDS}")
    check_quota(home_quota, "home")
    check_quota(outputs_quota, "outputs")


def outputs_over_quota(project: ProjectInfo, used_bytes: int) -> str | None:
    """Why a project's outputs folder holding `used_bytes` is over its quota, or None."""
    if used_bytes <= size_bytes(project.outputs_quota):
        return None
    return (f"the outputs of project {project.slug} hold {used_bytes / 1024**2:.1f} MiB, over "
            f"their quota of {project.outputs_quota}: ask a project administrator to raise it "
            f"(spe project update {project.slug} --outputs-quota SIZE) or to remove files")


def check_outputs_quota(project: ProjectInfo, used_bytes: int) -> None:
    """SpawnDenied when the project's outputs are over their quota (a soft quota: see docs)."""
    reason = outputs_over_quota(project, used_bytes)
    if reason:
        raise SpawnDenied(reason)


def bool_form(check: Callable[..., None], refusal: type[Exception]) -> Callable[..., bool]:
    """The bool form of a `check_can_*` function, for pages: True when it raises no `refusal`."""

    def can(*args, **kwargs) -> bool:
        try:
            check(*args, **kwargs)
        except refusal:
            return False
        return True

    can.__name__ = check.__name__.replace("check_can_", "can_")
    can.__doc__ = f"Bool form of {check.__name__}."
    return can


def check_server_name(server: str, chosen: str | None) -> str:
    """The project a named server starts: its own name; SpawnDenied for the default server or a
    form that chose another project than the server's."""
    if not server:
        raise SpawnDenied("choose a project: start the server named after one of your projects "
                          "(from the home page or /hub/spawn/<user>/<project>)")
    if chosen and chosen != server:
        raise SpawnDenied(f"this server belongs to project {server}, not {chosen}: "
                          f"start the server named {chosen}")
    return server


def check_can_spawn(project: ProjectInfo, roles: set[str], image: str, today: date) -> None:
    """A user with these roles may start this project's workspace with this image today, else
    SpawnDenied with the reason."""
    slug = project.slug
    if "researcher" not in roles:
        raise SpawnDenied(f"you are not a researcher of project {slug}")
    if project.status != "active":
        raise SpawnDenied(f"project {slug} is {project.status}")
    if today < project.start_date:
        raise SpawnDenied(f"project {slug} starts on {project.start_date.isoformat()}")
    if today > project.end_date:
        raise SpawnDenied(f"project {slug} ended on {project.end_date.isoformat()}")
    if image not in project.allowed_images:
        allowed = ", ".join(project.allowed_images) or "none"
        raise SpawnDenied(f"image {image} is not allowed for project {slug} (allowed: {allowed})")


can_spawn = bool_form(check_can_spawn, SpawnDenied)


def check_can_review(checked: list[ProjectInfo], image: str, review_image: str) -> None:
    """A user who checks these projects may start a review server with this image, else
    SpawnDenied with the reason.

    Output checkers are not project members, so they review in a server of their own: the
    workspace image with no project data, allowed while they check at least one project that is
    not closed (a suspended project's requests still need reviewing).
    """
    if not any(p.status != "closed" for p in checked):
        raise SpawnDenied("you are not an output checker of any open project: a review server "
                          "is only for output checkers")
    if image != review_image:
        raise SpawnDenied(f"image {image} is not the review image ({review_image})")


can_review = bool_form(check_can_review, SpawnDenied)


def review_server_must_stop(checked: list[ProjectInfo]) -> str | None:
    """Why a running review server must stop now (its user checks no open project any more),
    or None while it may run on."""
    if not any(p.status != "closed" for p in checked):
        return "no longer an output checker of any open project"
    return None


def startable_projects(projects: list[ProjectInfo], today: date) -> list[ProjectInfo]:
    """Of a researcher's projects, those whose workspace may start today (active, in dates)."""
    return [p for p in projects if p.status == "active" and p.start_date <= today <= p.end_date]


def must_stop(project: ProjectInfo, roles: set[str], today: date) -> str | None:
    """Why a running workspace of this project must stop now (expired, suspended, member
    removed), or None while it may run on."""
    if "researcher" not in roles:
        return f"no longer a researcher of project {project.slug}"
    if project.status != "active":
        return f"project {project.slug} is {project.status}"
    if today > project.end_date:
        return f"project {project.slug} ended on {project.end_date.isoformat()}"
    return None
