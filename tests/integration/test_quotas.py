"""LC-quota, registry side: quotas are stored, validated and changed like the other limits,
on SQLite and the real PostgreSQL; bad input is one line and changes nothing."""

from datetime import date

import pytest

from lnds_spe.projects import open_registry
from tests.integration.test_registry import snapshot, spe


@pytest.fixture
def cohort(database_url):
    """A registry with one project at the default quotas."""
    reg = open_registry(database_url)
    reg.create_project("cohort", "Cohort study", date(2026, 1, 1), date(2027, 12, 31),
                       actor="admin1")
    reg.engine.dispose()
    return database_url


def test_quotas_default_and_are_set_at_create_and_by_update(cohort):
    reg = open_registry(cohort)
    assert (reg.get_project("cohort").home_quota, reg.get_project("cohort").outputs_quota) == \
        ("5G", "10G")
    made = spe(cohort, "project", "create", "small", "--title", "T", "--start", "2026-01-01",
               "--end", "2026-12-31", "--home-quota", "64M", "--outputs-quota", "1G")
    assert made.returncode == 0, made.stderr
    assert (reg.get_project("small").home_quota, reg.get_project("small").outputs_quota) == \
        ("64M", "1G")
    changed = spe(cohort, "project", "update", "cohort", "--outputs-quota", "20G")
    assert changed.returncode == 0, changed.stderr
    assert "home quota 5G, outputs quota 20G" in changed.stdout
    assert reg.get_project("cohort").outputs_quota == "20G"
    event = reg.audit.query(project="cohort")[-1]
    assert (event.action, event.actor) == ("project.quota", "admin1")
    assert '"from":{"outputs_quota":"10G"}' in event.details.replace(" ", "")
    assert reg.audit.check().problems == []


LATER = ["--title", "T", "--start", "2026-01-01", "--end", "2026-12-31"]
BAD_QUOTAS = {
    "no unit": (["project", "create", "later", *LATER, "--home-quota", "5"],
                "invalid home quota '5'"),
    "too small": (["project", "create", "later", *LATER, "--outputs-quota", "1M"],
                  "invalid outputs quota '1M'"),
    "too large": (["project", "create", "later", *LATER, "--home-quota", "99999999999G"],
                  "invalid home quota '99999999999G'"),
    "update negative": (["project", "update", "cohort", "--outputs-quota", "-1G"],
                        "invalid outputs quota '-1G'"),
    "update nothing": (["project", "update", "cohort"], "nothing to change"),
    "update unknown project": (["project", "update", "nope", "--home-quota", "1G"],
                               "unknown project 'nope'"),
}


@pytest.mark.parametrize("case", list(BAD_QUOTAS))
def test_bad_quota_input_is_one_clear_line_and_changes_nothing(cohort, case):
    args, message = BAD_QUOTAS[case]
    before = snapshot(cohort)
    result = spe(cohort, *args)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert snapshot(cohort) == before
