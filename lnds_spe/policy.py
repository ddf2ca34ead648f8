"""Pure decisions: what is a valid project, member or dataset; who may start what. No I/O."""

import math
import re
from dataclasses import dataclass
from datetime import date

from lnds_spe.errors import InvalidStatusTransition, SPEError

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


@dataclass(frozen=True)
class Decision:
    """The answer to "may this happen?", with the reason shown to the user when it may not."""

    allowed: bool
    reason: str = ""


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


def check_limits(cpu_limit: float, mem_limit: str, pids_limit: int) -> None:
    """Resource limits a container engine accepts."""
    if not (math.isfinite(cpu_limit) and 0 < cpu_limit <= MAX_CPU):
        raise SPEError(f"invalid CPU limit {cpu_limit}: give a number of cores above 0 and at "
                       f"most {MAX_CPU:g}, e.g. 1.5")
    if (not _MEMORY.match(mem_limit or "")
            or int(mem_limit[:-1]) * _MEM_UNITS[mem_limit[-1]] > MAX_MEM_BYTES):
        raise SPEError(f"invalid memory limit {mem_limit!r}: use a number with K, M or G, at "
                       "most 4096G, e.g. 4G")
    if not 16 <= pids_limit <= MAX_PIDS:
        raise SPEError(f"invalid pids limit {pids_limit}: give 16 to {MAX_PIDS}")


def spawn_decision(project: ProjectInfo, roles: set[str], image: str, today: date) -> Decision:
    """May a user with these roles start this project's workspace with this image today?"""
    slug = project.slug
    if "researcher" not in roles:
        return Decision(False, f"you are not a researcher of project {slug}")
    if project.status != "active":
        return Decision(False, f"project {slug} is {project.status}")
    if today < project.start_date:
        return Decision(False, f"project {slug} starts on {project.start_date.isoformat()}")
    if today > project.end_date:
        return Decision(False, f"project {slug} ended on {project.end_date.isoformat()}")
    if image not in project.allowed_images:
        allowed = ", ".join(project.allowed_images) or "none"
        return Decision(False, f"image {image} is not allowed for project {slug} (allowed: {allowed})")
    return Decision(True)


def review_spawn_decision(checked: list[ProjectInfo], image: str, review_image: str) -> Decision:
    """May a user start a review server, given the projects they are an output checker of?

    Output checkers are not project members, so they review in a server of their own: the
    workspace image with no project data, allowed while they check at least one project that is
    not closed (a suspended project's requests still need reviewing).
    """
    if not any(p.status != "closed" for p in checked):
        return Decision(False, "you are not an output checker of any open project: a review "
                               "server is only for output checkers")
    if image != review_image:
        return Decision(False, f"image {image} is not the review image ({review_image})")
    return Decision(True)


def review_server_should_stop(checked: list[ProjectInfo]) -> Decision:
    """Must a running review server stop now (its user checks no open project any more)?"""
    if not any(p.status != "closed" for p in checked):
        return Decision(True, "no longer an output checker of any open project")
    return Decision(False)


def startable_projects(projects: list[ProjectInfo], today: date) -> list[ProjectInfo]:
    """Of a researcher's projects, those whose workspace may start today (active, in dates)."""
    return [p for p in projects if p.status == "active" and p.start_date <= today <= p.end_date]


def workspace_should_stop(project: ProjectInfo, roles: set[str], today: date) -> Decision:
    """Must a running workspace of this project stop now (expired, suspended, member removed)?"""
    if "researcher" not in roles:
        return Decision(True, f"no longer a researcher of project {project.slug}")
    if project.status != "active":
        return Decision(True, f"project {project.slug} is {project.status}")
    if today > project.end_date:
        return Decision(True, f"project {project.slug} ended on {project.end_date.isoformat()}")
    return Decision(False)
