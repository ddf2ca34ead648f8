"""LC1 / V1: the project status transition table, and input the registry must refuse."""

import math

import pytest

from lnds_spe import policy
from lnds_spe.errors import InvalidStatusTransition, SPEError


@pytest.mark.parametrize(("current", "new"), [("active", "suspended"), ("suspended", "active"),
                                              ("active", "closed"), ("suspended", "closed")])
def test_allowed_transitions(current, new):
    assert policy.check_status_transition(current, new) == new


@pytest.mark.parametrize("new", ["active", "suspended"])
def test_closing_is_final(new):
    with pytest.raises(InvalidStatusTransition, match="closed project cannot become .*: closing "
                                                      "a project is final"):
        policy.check_status_transition("closed", new)


def test_no_change_is_refused_and_unknown_status_named():
    with pytest.raises(InvalidStatusTransition, match="already active"):
        policy.check_status_transition("active", "active")
    with pytest.raises(InvalidStatusTransition, match="already closed"):
        policy.check_status_transition("closed", "closed")
    with pytest.raises(SPEError, match="unknown status 'paused'"):
        policy.check_status_transition("active", "paused")


@pytest.mark.parametrize(("cpu", "mem", "pids", "message"), [
    (math.inf, "2G", 64, "invalid CPU limit inf"),
    (math.nan, "2G", 64, "invalid CPU limit nan"),
    (10_000.0, "2G", 64, "invalid CPU limit 10000.0"),
    (1.0, "99999999999999999999G", 64, "invalid memory limit '99999999999999999999G'"),
    (1.0, "5000G", 64, "invalid memory limit '5000G'"),
    (1.0, "2G", 99999999999999999999, "invalid pids limit 99999999999999999999"),
    (1.0, "2G", 2**31, "invalid pids limit"),
])
def test_limits_beyond_what_an_engine_or_the_registry_holds(cpu, mem, pids, message):
    with pytest.raises(SPEError, match=message):
        policy.check_limits(cpu, mem, pids)


def test_largest_limits_accepted():
    policy.check_limits(policy.MAX_CPU, "4096G", policy.MAX_PIDS)


@pytest.mark.parametrize("name", ["Alice", "ALICE", "j.Smith"])
def test_user_names_jupyterhub_would_lowercase_are_refused(name):
    with pytest.raises(SPEError, match=f"invalid user name '{name}'.*{name.lower()}"):
        policy.check_username(name)
