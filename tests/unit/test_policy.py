"""Pure policy decisions: validation of registry input and who may start what."""

from dataclasses import replace
from datetime import date

import pytest

from lnds_spe import policy
from lnds_spe.errors import SpawnDenied, SPEError
from lnds_spe.policy import ProjectInfo, can_spawn, check_can_spawn, must_stop

PROJECT = ProjectInfo("cohort", "Cohort", "", date(2026, 1, 1), date(2026, 12, 31), "active",
                      1.0, "2G", 512, ("localhost/ws:1",))


@pytest.mark.parametrize("slug", ["a", "cohort", "cohort-2026", "a" * 30])
def test_valid_slugs(slug):
    assert policy.check_slug(slug) == slug


@pytest.mark.parametrize("slug", ["", "A", "Cohort", "1cohort", "cohort-", "co_hort", "a" * 31,
                                  "co hort", "../x"])
def test_invalid_slugs_name_the_input(slug):
    with pytest.raises(SPEError, match="invalid project slug"):
        policy.check_slug(slug)


def test_dates_and_limits():
    policy.check_dates(date(2026, 1, 1), date(2026, 1, 1))
    with pytest.raises(SPEError, match="before start date"):
        policy.check_dates(date(2026, 1, 2), date(2026, 1, 1))
    policy.check_limits(0.5, "512M", 64)
    for cpu, mem, pids in [(0, "2G", 64), (1, "2 GB", 64), (1, "0G", 64), (1, "2G", 1)]:
        with pytest.raises(SPEError, match="invalid"):
            policy.check_limits(cpu, mem, pids)


def test_roles_statuses_names():
    assert policy.check_role("output_checker") == "output_checker"
    with pytest.raises(SPEError, match="unknown role 'admin'"):
        policy.check_role("admin")
    with pytest.raises(SPEError, match="unknown status"):
        policy.check_status("paused")
    with pytest.raises(SPEError, match="invalid dataset name"):
        policy.check_dataset_name("../etc")
    with pytest.raises(SPEError, match="invalid user name"):
        policy.check_username("bob smith")


DAY = date(2026, 6, 1)


@pytest.mark.parametrize("project, roles, image, today, reason", [
    (PROJECT, {"output_checker"}, "localhost/ws:1", DAY, "not a researcher of project cohort"),
    (replace(PROJECT, status="suspended"), {"researcher"}, "localhost/ws:1", DAY, "is suspended"),
    (PROJECT, {"researcher"}, "localhost/ws:1", date(2025, 12, 31), "starts on 2026-01-01"),
    (PROJECT, {"researcher"}, "localhost/ws:1", date(2027, 1, 1), "ended on 2026-12-31"),
    (PROJECT, {"researcher"}, "evil:latest", DAY, "image evil:latest is not allowed"),
])
def test_spawn_refusals_give_the_reason(project, roles, image, today, reason):
    with pytest.raises(SpawnDenied, match=reason):
        check_can_spawn(project, roles, image, today)
    assert not can_spawn(project, roles, image, today)


def test_spawn_allowed_on_first_and_last_day():
    for day in (PROJECT.start_date, PROJECT.end_date):
        assert can_spawn(PROJECT, {"researcher"}, "localhost/ws:1", day)


def test_running_workspace_stops_when_expired_suspended_or_member_removed():
    assert must_stop(PROJECT, {"researcher"}, DAY) is None
    assert "no longer a researcher" in must_stop(PROJECT, set(), DAY)
    assert "is closed" in must_stop(replace(PROJECT, status="closed"), {"researcher"}, DAY)
    assert "ended on" in must_stop(PROJECT, {"researcher"}, date(2027, 1, 1))


def test_server_name_is_the_project():
    assert policy.check_server_name("cohort", None) == "cohort"
    assert policy.check_server_name("cohort", "cohort") == "cohort"
    with pytest.raises(SpawnDenied, match="choose a project"):
        policy.check_server_name("", None)
    with pytest.raises(SpawnDenied, match="belongs to project cohort, not other"):
        policy.check_server_name("cohort", "other")


def test_named_errors_are_still_spe_errors():
    """Existing `except SPEError` handlers keep catching every named error."""
    from lnds_spe import errors

    named = [errors.ProjectNotFound, errors.SpawnDenied, errors.DatasetUnavailable,
             errors.InvalidStatusTransition]
    assert all(issubclass(error, SPEError) for error in named)
