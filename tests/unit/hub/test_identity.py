"""The sign-in decisions of lnds_spe/hub/identity.py: which authenticator, and claims to verdict."""

import json

import pytest

from lnds_spe.demo import DEMO_ADMINS, DEMO_USERS, ensure_demo_accounts
from lnds_spe.hub.identity import (
    ADMINS_GROUP,
    AUTHENTICATORS,
    CHECKERS_GROUP,
    IdentityConfigError,
    IdentityPolicy,
    authenticator_choice,
    demo_mode_requested,
    id_token_claims,
    identity_decision,
    oidc_settings,
    read_accounts,
)

pytestmark = pytest.mark.unit

POLICY = IdentityPolicy(allowed_groups=frozenset({"spe-users"}),
                        admin_groups=frozenset({"idp-admins"}),
                        checker_groups=frozenset({"spe-checkers"}))
MFA = IdentityPolicy(allowed_groups=frozenset({"spe-users"}), require_mfa=True,
                     mfa_acr_values=frozenset({"urn:spe:mfa"}),
                     mfa_amr_values=frozenset({"otp", "hwk"}))


def test_shared_password_runs_only_in_explicit_demo_mode():
    with pytest.raises(IdentityConfigError, match="SPE_DEMO_MODE=1"):
        authenticator_choice("shared-password", demo_mode=False)
    assert authenticator_choice("shared-password", demo_mode=True) == "shared-password"


def test_default_is_per_person_accounts_and_unknown_names_are_refused():
    assert authenticator_choice("", demo_mode=False) == AUTHENTICATORS["native"]
    assert authenticator_choice("oidc", demo_mode=False) == AUTHENTICATORS["oidc"]
    with pytest.raises(IdentityConfigError, match="'ldap' is not known"):
        authenticator_choice("ldap", demo_mode=False)


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("", False), ("0", False),
                                                  ("yes", False)])
def test_demo_mode_is_only_the_explicit_setting(value, expected):
    assert demo_mode_requested({"SPE_DEMO_MODE": value}) is expected


def test_groups_map_to_admin_and_output_checker():
    admin = identity_decision({"groups": ["spe-users", "idp-admins"]}, POLICY)
    assert admin.allowed and admin.admin and admin.hub_groups == ("idp-admins", ADMINS_GROUP, "spe-users")
    checker = identity_decision({"groups": ["spe-users", "spe-checkers", "payroll"]}, POLICY)
    assert checker.allowed and not checker.admin
    assert checker.hub_groups == (CHECKERS_GROUP, "spe-checkers", "spe-users")  # no "payroll"


def test_a_person_outside_the_allowed_groups_is_refused_with_the_groups_named():
    for claims in ({"groups": ["payroll"]}, {}, {"groups": "payroll"}, {"groups": [3, None]}):
        decision = identity_decision(claims, POLICY)
        assert not decision.allowed and "spe-users" in decision.reason


def test_admin_or_checker_groups_alone_do_not_let_in_when_allowed_groups_are_set():
    assert not identity_decision({"groups": ["spe-checkers"]}, POLICY).allowed
    open_policy = IdentityPolicy(checker_groups=frozenset({"spe-checkers"}))
    assert identity_decision({"groups": ["spe-checkers"]}, open_policy).allowed
    assert not identity_decision({"groups": ["payroll"]}, open_policy).allowed


@pytest.mark.parametrize(("claims", "allowed"), [
    ({"acr": "urn:spe:mfa"}, True),
    ({"amr": ["pwd", "otp"]}, True),
    ({"amr": "hwk"}, True),
    ({"acr": "urn:spe:password"}, False),
    ({"amr": ["pwd"]}, False),
    ({}, False),
])
def test_multi_factor_claim_is_required_when_configured(claims, allowed):
    decision = identity_decision({"groups": ["spe-users"], **claims}, MFA)
    assert decision.allowed is allowed
    if not allowed:
        assert "multi-factor" in decision.reason


def test_demo_accounts_have_one_password_each_and_replace_the_shared_shape(tmp_path):
    (tmp_path / "demo-accounts.json").write_text(json.dumps({"user_password": "x" * 16,
                                                             "admin_password": "y" * 32}))
    accounts, created = ensure_demo_accounts(tmp_path)
    assert created
    passwords = accounts["passwords"]
    assert set(passwords) == set(DEMO_USERS) | set(DEMO_ADMINS)
    assert len(set(passwords.values())) == len(passwords)  # nobody shares a password
    assert (tmp_path / "demo-accounts.json").stat().st_mode & 0o077 == 0
    assert ensure_demo_accounts(tmp_path) == (accounts, False)


def test_an_expired_id_token_still_tells_how_the_person_signed_in_but_not_for_another_client():
    import time

    import jwt

    token = jwt.encode({"aud": "spe-hub", "exp": int(time.time()) - 3600, "acr": "urn:spe:mfa"},
                       "k" * 32, algorithm="HS256")
    assert id_token_claims({"id_token": token}, "spe-hub")["acr"] == "urn:spe:mfa"
    assert id_token_claims({}, "spe-hub") == {}
    with pytest.raises(jwt.InvalidAudienceError):
        id_token_claims({"id_token": token}, "another-client")


DOCUMENT = {"authorization_endpoint": "http://idp.test/auth", "token_endpoint": "http://idp.test/token",
            "userinfo_endpoint": "http://idp.test/me"}


def test_oidc_settings_take_defaults_for_empty_settings_and_name_what_is_missing():
    required = {"SPE_OIDC_ISSUER": "http://idp.test", "SPE_OIDC_CLIENT_ID": "spe-hub",
                "SPE_OIDC_CLIENT_SECRET": "s3cret"}
    empty = dict.fromkeys(("SPE_OIDC_EXTRA_SCOPES", "SPE_OIDC_CHECKER_GROUPS",
                           "SPE_OIDC_GROUPS_CLAIM", "SPE_OIDC_REFRESH_AGE"), "")
    settings = oidc_settings({**required, **empty}, "http://hub.test", DOCUMENT)
    assert settings["scope"] == ["openid", "profile", "groups"]  # groups asked for by default
    assert settings["checker_groups"] == {CHECKERS_GROUP} and settings["groups_claim"] == "groups"
    assert settings["oauth_callback_url"] == "http://hub.test/hub/oauth_callback"
    assert settings["enable_pkce"] and settings["manage_groups"] and settings["auth_refresh_strict"]
    assert settings["auth_refresh_age"] == 300 and settings["token_url"] == "http://idp.test/token"
    with pytest.raises(IdentityConfigError, match="SPE_OIDC_CLIENT_SECRET"):
        oidc_settings({**required, "SPE_OIDC_CLIENT_SECRET": ""}, "http://hub.test", DOCUMENT)


def test_an_accounts_file_others_may_read_or_of_the_wrong_shape_is_refused(tmp_path):
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"passwords": {"admin": "first-admin-password"}}))
    path.chmod(0o600)
    assert read_accounts(path) == {"admin": "first-admin-password"}
    path.chmod(0o640)
    with pytest.raises(IdentityConfigError, match="chmod 600"):
        read_accounts(path)
    path.chmod(0o600)
    for text in ('{"user_password": "x"}', '{"passwords": {"admin": ""}}', "not json", "[1]"):
        path.write_text(text)
        with pytest.raises(IdentityConfigError, match="passwords"):
            read_accounts(path)
