"""The `spe` command: projects, members, datasets and the audit log, for admins and data holders."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from lnds_spe.cli_data import actor as _actor
from lnds_spe.cli_data import data_app, keys_app
from lnds_spe.cli_pseudo import link_app, pseudo_app
from lnds_spe.clock import utc_text
from lnds_spe.config import DEFAULT_IMAGE, database_url, redacted_url, state_dir
from lnds_spe.errors import SPEError

if TYPE_CHECKING:  # the registry (SQLAlchemy, Alembic) is imported by the commands that use it
    from lnds_spe.projects import Registry

app = typer.Typer(help="LNDS SPE: a Secure Processing Environment on JupyterHub. "
                       "`spe where` names the state dir every command uses.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
project_app = typer.Typer(help="Create and manage projects.", no_args_is_help=True)
member_app = typer.Typer(help="Members of a project and their roles.", no_args_is_help=True)
dataset_app = typer.Typer(help="Datasets registered to a project.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(project_app, name="project")
project_app.add_typer(member_app, name="member")
project_app.add_typer(dataset_app, name="dataset")
app.add_typer(audit_app, name="audit")
demo_app = typer.Typer(help="The demo project and accounts.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
db_app = typer.Typer(help="The registry database's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()


@contextmanager
def _registry() -> Iterator["Registry"]:
    """The registry; a user error becomes one line on stderr and exit status 2."""
    from lnds_spe.projects import open_registry

    try:
        yield open_registry()
    except SPEError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SPEError(f"invalid {option} {text!r}: use YYYY-MM-DD") from None


def _parse_bound(text: str | None, option: str, *, upper: bool) -> str | None:
    """A --since/--until value as audit time text; a bare date as --until means through that day."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SPEError(f"invalid {option} {text!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if upper and len(text) == 10:
        moment += timedelta(days=1)
    return utc_text(moment)


@app.command("where")
def where() -> None:
    """Print where this `spe` keeps its state: the state dir, registry, store and keys."""
    from lnds_spe.storage import default_store_url

    state = state_dir()
    out.print(f"state dir: {state}", highlight=False, soft_wrap=True)
    out.print(f"registry: {redacted_url(database_url())}", highlight=False, soft_wrap=True)
    out.print(f"store: {default_store_url()}", highlight=False, soft_wrap=True)
    out.print(f"keys: {state / 'keys'}", highlight=False, soft_wrap=True)


# Projects

@project_app.command("create")
def project_create(
    slug: str,
    title: Annotated[str, typer.Option(help="Human-readable title.")],
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD.")],
    description: str = "",
    cpu: Annotated[float, typer.Option(help="CPU cores per workspace.")] = 1.0,
    mem: Annotated[str, typer.Option(help="Memory per workspace, e.g. 4G.")] = "2G",
    pids: Annotated[int, typer.Option(help="Process limit per workspace.")] = 512,
    image: Annotated[list[str] | None, typer.Option(help="Allowed workspace image (repeat).")] = None,
    home_quota: Annotated[str, typer.Option(help="Size of each member's home volume, e.g. 5G.")]
    = "5G",
    outputs_quota: Annotated[str, typer.Option(help="Size of the project's outputs, e.g. 10G.")]
    = "10G",
) -> None:
    """Create a project."""
    with _registry() as reg:
        info = reg.create_project(slug, title, _parse_date(start, "--start"),
                                  _parse_date(end, "--end"), actor=_actor(),
                                  description=description, cpu_limit=cpu, mem_limit=mem,
                                  pids_limit=pids, allowed_images=image or [DEFAULT_IMAGE],
                                  home_quota=home_quota, outputs_quota=outputs_quota)
        out.print(f"created project {info.slug} ({info.start_date} to {info.end_date})")


@project_app.command("update")
def project_update(
    slug: str,
    home_quota: Annotated[str | None, typer.Option(
        help="Size of each member's home volume, e.g. 5G (a larger one applies to existing "
             "homes at their next start; a smaller one to new homes).")] = None,
    outputs_quota: Annotated[str | None, typer.Option(
        help="Size of the project's outputs, e.g. 10G.")] = None,
) -> None:
    """Change a project's quotas."""
    with _registry() as reg:
        info = reg.set_quotas(slug, actor=_actor(), home_quota=home_quota,
                              outputs_quota=outputs_quota)
        out.print(f"project {slug}: home quota {info.home_quota}, outputs quota "
                  f"{info.outputs_quota}")


@project_app.command("list")
def project_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List projects."""
    with _registry() as reg:
        projects = reg.list_projects()
        if as_json:
            for p in projects:
                out.print_json(json.dumps(_project_dict(p)))
            return
        table = Table("slug", "title", "status", "start", "end")
        for p in projects:
            table.add_row(p.slug, p.title, p.status, str(p.start_date), str(p.end_date))
        out.print(table)


def _project_dict(p) -> dict:
    return {"slug": p.slug, "title": p.title, "description": p.description,
            "start_date": p.start_date.isoformat(), "end_date": p.end_date.isoformat(),
            "status": p.status, "cpu_limit": p.cpu_limit, "mem_limit": p.mem_limit,
            "pids_limit": p.pids_limit, "allowed_images": list(p.allowed_images),
            "home_quota": p.home_quota, "outputs_quota": p.outputs_quota}


@project_app.command("show")
def project_show(slug: str) -> None:
    """Show one project with its members and datasets."""
    with _registry() as reg:
        info = _project_dict(reg.get_project(slug))
        info["members"] = [{"username": m.username, "role": m.role} for m in reg.members(slug)]
        info["datasets"] = [{"name": d.name, "location": d.location,
                             "plaintext_sha256": d.plaintext_sha256} for d in reg.datasets(slug)]
        out.print_json(json.dumps(info))


def _set_status(slug: str, status: str) -> None:
    with _registry() as reg:
        reg.set_status(slug, status, actor=_actor())
        out.print(f"project {slug} is now {status}")


@project_app.command("suspend")
def project_suspend(slug: str) -> None:
    """Suspend a project: no new workspaces; running ones are stopped."""
    _set_status(slug, "suspended")


@project_app.command("resume")
def project_resume(slug: str) -> None:
    """Make a suspended project active again."""
    _set_status(slug, "active")


@project_app.command("close")
def project_close(
    slug: str,
    outputs: Annotated[str | None, typer.Option(
        help="What happens to its outputs and its members' home volumes: archive or delete "
             "(default $SPE_CLOSE_OUTPUTS, else archive).")] = None,
) -> None:
    """Close a project for good (final), then archive or delete its outputs and home volumes."""
    from lnds_spe.lifecycle import close_project

    with _registry() as reg:
        closed = close_project(reg, slug, actor=_actor(), state_dir=state_dir(),
                               outputs_policy=outputs)
        out.print(closed.message(slug), highlight=False, soft_wrap=True)


# Members

@member_app.command("add")
def member_add(slug: str, username: str,
               role: Annotated[str, typer.Option(help="researcher, output_checker or project_admin.")]
               ) -> None:
    """Give a user a role in a project."""
    with _registry() as reg:
        reg.add_member(slug, username, role, actor=_actor())
        out.print(f"{username} is now {role} of {slug}")


@member_app.command("remove")
def member_remove(slug: str, username: str,
                  role: Annotated[str | None, typer.Option(help="Only this role.")] = None) -> None:
    """Take a user's role (or all their roles) in a project away."""
    with _registry() as reg:
        removed = reg.remove_member(slug, username, role, actor=_actor())
        out.print(f"removed {username} from {slug} ({', '.join(m.role for m in removed)})")


@member_app.command("list")
def member_list(slug: str) -> None:
    """List a project's members."""
    with _registry() as reg:
        table = Table("username", "role")
        for m in reg.members(slug):
            table.add_row(m.username, m.role)
        out.print(table)


# Datasets

@dataset_app.command("add")
def dataset_add(slug: str, name: str,
                location: Annotated[str, typer.Option(help="Where the encrypted object is.")],
                sha256: Annotated[str, typer.Option(help="Plaintext sha256.")] = "",
                size: Annotated[int, typer.Option(help="Plaintext size in bytes.")] = 0) -> None:
    """Register a dataset to a project (`spe data register` does this for you)."""
    from lnds_spe.storage import check_location

    with _registry() as reg:
        check_location(location)
        reg.add_dataset(slug, name, location, actor=_actor(), plaintext_sha256=sha256,
                        plaintext_size=size)
        out.print(f"dataset {name} registered to {slug}")


@dataset_app.command("list")
def dataset_list(slug: str) -> None:
    """List a project's datasets."""
    with _registry() as reg:
        table = Table("name", "location", "plaintext size", "plaintext sha256")
        for d in reg.datasets(slug):
            table.add_row(d.name, d.location, str(d.plaintext_size), d.plaintext_sha256)
        out.print(table)


# Audit

@audit_app.command("verify")
def audit_verify() -> None:
    """Check the keyed chain, the checkpoints outside the database, and the registry against its
    events; name every edited, cut or unrecorded row."""
    with _registry() as reg:
        report = reg.audit.check()
        for note in report.notes:
            out.print(f"note: {note}", highlight=False)
        for problem in report.problems:
            typer.echo(f"audit log BROKEN at {problem.where}: {problem.reason}", err=True)
        if report.problems:
            raise typer.Exit(1)
        out.print(f"audit log OK: {report.events} events, chain intact, checkpoints agree, "
                  "registry matches its events")


@audit_app.command("grant-app-role")
def audit_grant_app_role(
    role: Annotated[str, typer.Argument(help="The PostgreSQL role the SPE connects as.")],
) -> None:
    """PostgreSQL, run as the database owner: give ROLE the SPE's rights, with no UPDATE or
    DELETE of audit rows (created with LOGIN if missing; rerun after an upgrade adds tables)."""
    from lnds_spe.audit import grant_app_role

    with _registry() as reg:
        grant_app_role(reg.engine, role)
        out.print(f"role {role} may now run the SPE: audit_events INSERT/SELECT only, "
                  "audit_head UPDATE of its row only, audit_chain SELECT only")


@audit_app.command("query")
def audit_query(
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    user: Annotated[str | None, typer.Option(help="Only events by or about this user.")] = None,
    since: Annotated[str | None, typer.Option(help="From this date/time (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this date (inclusive) or time.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
) -> None:
    """Who did what, when: events of a project and/or a person between two dates."""
    with _registry() as reg:
        events = reg.audit.query(project=project, user=user,
                                 since=_parse_bound(since, "--since", upper=False),
                                 until=_parse_bound(until, "--until", upper=True))
        if as_json:
            for ev in events:
                print(json.dumps(ev.as_dict(), sort_keys=True))
            return
        table = Table("seq", "time", "actor", "action", "project", "target", "outcome")
        for ev in events:
            table.add_row(str(ev.seq), ev.time, ev.actor, ev.action, ev.project or "",
                          ev.target or "", ev.outcome)
        out.print(table)


# Database

@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the registry to this SPE's schema (setup and the hub's start run it; stop the hub
    first when upgrading by hand)."""
    from lnds_spe.db import upgrade_database

    try:
        before, after = upgrade_database(database_url())
    except SPEError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    where = redacted_url(database_url())
    if before == after:
        out.print(f"registry at {where} already at schema revision {after}", highlight=False)
    else:
        out.print(f"registry at {where} migrated from {before or 'empty'} to {after}",
                  highlight=False)


# Demo

@demo_app.command("init")
def demo_init() -> None:
    """Create the demo project, members, dataset and one password per account (only what is missing)."""
    from lnds_spe.demo import init_demo  # pandas and numpy make the demo's data

    with _registry() as reg:
        accounts = init_demo(reg, state_dir(), _actor())
        if accounts is None:
            out.print(f"demo ready; accounts as printed before (in {state_dir()}/demo-accounts.json)")
            return
        table = Table("user", "roles", "password", title="Demo accounts (shown once)")
        for user, roles in accounts["users"].items():
            table.add_row(user, ", ".join(roles), accounts["passwords"][user])
        for admin in accounts["admins"]:
            table.add_row(admin, "admin", accounts["passwords"][admin])
        out.print(table)


app.add_typer(keys_app, name="keys")
app.add_typer(data_app, name="data")
app.add_typer(pseudo_app, name="pseudo")
app.add_typer(link_app, name="link")
