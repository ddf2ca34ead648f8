"""The output checker's review server: the pure decisions and the spawner's use of them."""

import json
from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from lnds_spe import policy
from lnds_spe.errors import SpawnDenied, SPEError
from lnds_spe.hub import lockdown
from lnds_spe.hub.enforcer import RunningWorkspace, stop_reason
from lnds_spe.hub.firewall import chain_rules
from lnds_spe.hub.spawner import SpawnRefused, SPEDockerSpawner
from lnds_spe.projects import DEFAULT_IMAGE, open_registry

TODAY = date(2026, 6, 1)


def project(slug: str, status: str = "active") -> policy.ProjectInfo:
    return policy.ProjectInfo(slug, slug, "", TODAY - timedelta(days=1), TODAY + timedelta(days=9),
                              status, 1.0, "1G", 100, ("img",))


def test_review_is_a_reserved_slug():
    with pytest.raises(SPEError, match="reserved"):
        policy.check_slug(policy.REVIEW_SERVER)
    assert policy.check_slug("reviews") == "reviews"


def test_review_decision_needs_an_open_checked_project_and_the_review_image():
    assert not policy.can_review([], "img", "img")
    assert not policy.can_review([project("p", "closed")], "img", "img")
    assert policy.can_review([project("p", "suspended")], "img", "img")
    with pytest.raises(SpawnDenied, match="image other is not the review image"):
        policy.check_can_review([project("p")], "other", "img")
    assert policy.can_review([project("p"), project("q", "closed")], "img", "img")


def test_review_server_stops_when_nothing_is_left_to_check():
    assert "no longer an output checker" in policy.review_server_must_stop([project("p", "closed")])
    assert policy.review_server_must_stop([project("p")]) is None


def test_firewall_opens_each_allowed_port_once_then_rejects():
    rules = chain_rules("spe-net-p1", [8081, 8010, 8081])
    accepts = [r[r.index("--dport") + 1] for r in rules if "--dport" in r]
    assert accepts == ["8010", "8081"]
    assert rules.index(["-A", rules[0][1], "-p", "tcp", "-j", "REJECT", "--reject-with",
                        "tcp-reset"]) > max(i for i, r in enumerate(rules) if "--dport" in r)
    with pytest.raises(ValueError):
        chain_rules("n", [0])


def test_review_network_is_the_checkers_own():
    assert lockdown.review_network_name("spe", "carol") != lockdown.review_network_name("spe", "dave")
    assert not lockdown.review_network_name("spe", "x").startswith("spe-net-")


@pytest.fixture
def registry(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'spe.sqlite'}")
    today = date.today()
    registry.create_project("live", "Live", today - timedelta(days=1), today + timedelta(days=9),
                            actor="t", allowed_images=(DEFAULT_IMAGE,))
    registry.add_member("live", "ann", "researcher", actor="t")
    registry.add_member("live", "cat", "output_checker", actor="t")
    return registry


def spawner(registry, tmp_path, user: str, name: str, options=None) -> SPEDockerSpawner:
    return SPEDockerSpawner(registry_url=registry.url, spe_state_dir=str(tmp_path),
                            user=SimpleNamespace(name=user),
                            orm_spawner=SimpleNamespace(name=name, server=None),
                            user_options=options or {})


def test_checker_may_start_a_review_server_and_others_are_refused_audited(registry, tmp_path):
    spawner(registry, tmp_path, "cat", "review").authorize_review()
    with pytest.raises(SpawnRefused, match="not an output checker"):
        spawner(registry, tmp_path, "ann", "review").authorize_review()
    with pytest.raises(SpawnRefused, match="not the review image"):
        spawner(registry, tmp_path, "cat", "review", {"image": "evil:latest"}).authorize_review()
    denied = [e for e in registry.audit.query() if e.action == "workspace.spawn_denied"]
    seen = [(e.actor, e.project, json.loads(e.details)["server"]) for e in denied]
    assert seen == [("ann", None, "review"), ("cat", None, "review")]


def test_server_tokens_carry_the_airlock_scope_of_their_kind(registry, tmp_path):
    review = spawner(registry, tmp_path, "cat", "review")
    workspace = spawner(registry, tmp_path, "ann", "live")
    assert "custom:airlock:review" in review.token_scopes()
    assert "custom:airlock:request" not in review.token_scopes()
    assert "custom:airlock:request" in workspace.token_scopes()
    assert "custom:airlock:review" not in workspace.token_scopes()
    for s in (review, workspace):
        assert {"access:services!service=airlock", "users:activity!user"} <= set(s.token_scopes())
        assert s.server_token_scopes(s) == s.token_scopes()


def test_enforcer_keeps_a_checkers_review_server_and_stops_anyone_elses(registry):
    keep = stop_reason(registry, RunningWorkspace("cat", "review"), date.today())
    stop = stop_reason(registry, RunningWorkspace("ann", "review"), date.today())
    assert keep is None and "no longer an output checker" in stop


def test_enforcer_stops_only_for_a_missing_project_not_for_any_registry_error(registry,
                                                                               monkeypatch):
    """A project the registry does not know must stop; a registry that fails for another reason
    must not be read as "no project" (the round fails and is retried)."""
    gone = stop_reason(registry, RunningWorkspace("ann", "nope"), date.today())
    assert gone == "there is no project nope"

    def unavailable(slug):
        raise SPEError(f"registry unavailable while reading {slug}")

    monkeypatch.setattr(registry, "get_project", unavailable)
    with pytest.raises(SPEError, match="registry unavailable"):
        stop_reason(registry, RunningWorkspace("ann", "live"), date.today())
