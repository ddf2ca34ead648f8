"""The admin console's pure form parsing, and the SPE admin role's scopes, without a hub."""

import asyncio
import csv
import io
from datetime import date

import pytest
from jupyterhub.auth import Authenticator

from lnds_spe.audit import Event
from lnds_spe.config import DEFAULT_IMAGE
from lnds_spe.errors import SPEError
from lnds_spe.hub import admin_forms
from lnds_spe.hub.roles import SCOPE_SPE_ADMIN, project_access, spe_admin_role, without_hub_admins

GOOD = {"slug": "health", "title": " Health ", "start": "2030-01-01", "end": "2030-06-30"}


def test_project_form_takes_the_cli_defaults():
    new = admin_forms.project_request(GOOD)
    assert (new.slug, new.title, new.start, new.end) == ("health", "Health", date(2030, 1, 1),
                                                          date(2030, 6, 30))
    assert (new.cpu_limit, new.mem_limit, new.pids_limit) == (1.0, "2G", 512)
    assert new.allowed_images == (DEFAULT_IMAGE,)


def test_project_form_reads_limits_and_images_one_a_line():
    new = admin_forms.project_request({**GOOD, "cpu": "2.5", "mem": "8G", "pids": "1024",
                                       "image": "img/a:1\n\n img/b:2 \n"})
    assert (new.cpu_limit, new.mem_limit, new.pids_limit) == (2.5, "8G", 1024)
    assert new.allowed_images == ("img/a:1", "img/b:2")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("start", "01/02/2030", "invalid --start '01/02/2030': use YYYY-MM-DD"),
    ("end", "", "invalid --end '': use YYYY-MM-DD"),
    ("cpu", "two", "invalid cpu 'two': give a number of cores"),
    ("pids", "1.5", "invalid pids '1.5': give a whole number"),
])
def test_project_form_names_the_bad_field(field, value, message):
    with pytest.raises(SPEError, match=message):
        admin_forms.project_request({**GOOD, field: value})


def test_quota_forms_leave_an_empty_field_unchanged():
    assert admin_forms.project_request(GOOD).home_quota == "5G"
    assert admin_forms.quota_request({"home_quota": " 8G ", "outputs_quota": ""}) == \
        admin_forms.QuotaChange("8G", None)


def test_member_form_needs_a_name_and_a_role_to_add():
    assert admin_forms.member_request({"username": "bob", "role": "researcher"},
                                      removing=False) == admin_forms.MemberChange("bob", "researcher")
    assert admin_forms.member_request({"username": "bob"}, removing=True).role is None
    with pytest.raises(SPEError, match="choose a role"):
        admin_forms.member_request({"username": "bob"}, removing=False)
    with pytest.raises(SPEError, match="needs a user name"):
        admin_forms.member_request({"role": "researcher"}, removing=False)


def test_dataset_form_checks_the_location_as_the_cli_does():
    new = admin_forms.dataset_request({"name": "d", "location": "s3://b/k.c4gh", "size": "9"})
    assert (new.location, new.plaintext_size) == ("s3://b/k.c4gh", 9)
    with pytest.raises(SPEError, match="not an encrypted object in a store"):
        admin_forms.dataset_request({"name": "d", "location": "file:///etc/passwd"})


def test_status_and_close_forms():
    assert admin_forms.status_request("suspend") == "suspended"
    assert admin_forms.status_request("resume") == "active"
    with pytest.raises(SPEError, match="unknown operation 'delete'"):
        admin_forms.status_request("delete")
    with pytest.raises(SPEError, match="closing is final"):
        admin_forms.close_request({"outputs": "delete", "confirm": "yes"})
    assert admin_forms.close_request({"outputs": "delete", "confirm": "close"}) == "delete"
    with pytest.raises(SPEError, match="invalid --outputs 'keep'"):
        admin_forms.close_request({"outputs": "keep", "confirm": "close"})


def test_audit_filter_uses_the_cli_bounds():
    wanted = admin_forms.audit_filter({"project": "p", "user": "", "since": "2030-01-01",
                                       "until": "2030-01-31"})
    assert (wanted.project, wanted.user) == ("p", None)
    assert wanted.since == "2030-01-01T00:00:00.000000Z"
    assert wanted.until == "2030-02-01T00:00:00.000000Z"  # --until a date is inclusive
    with pytest.raises(SPEError, match="invalid --until 'soon'"):
        admin_forms.audit_filter({"until": "soon"})


def test_audit_csv_quotes_cells_a_spreadsheet_would_run():
    event = Event(1, "2030-01-01T00:00:00.000000Z", "admin", "member.add", "p", "=HYPERLINK(1)",
                  "ok", '{"role":"researcher"}', "0" * 64, "1" * 64)
    rows = list(csv.reader(io.StringIO(admin_forms.audit_csv([event]))))
    assert rows[0] == list(admin_forms.AUDIT_COLUMNS)
    assert rows[1][5] == "'=HYPERLINK(1)" and rows[1][7] == '{"role":"researcher"}'


def test_spe_admin_role_cannot_open_share_or_impersonate():
    role = spe_admin_role({"root", "admin"})
    assert role["users"] == ["admin", "root"] and SCOPE_SPE_ADMIN in role["scopes"]
    for forbidden in ("access:servers", "shares", "tokens", "admin:servers", "start:servers",
                      "servers", "proxy", "admin:groups", "groups"):
        assert forbidden not in role["scopes"]


def test_wrapped_authenticator_never_makes_hub_admins():
    class Plain(Authenticator):
        async def authenticate(self, handler, data):
            return {"name": data["username"], "admin": True}

    wrapped = without_hub_admins(Plain)
    assert issubclass(wrapped, Plain)
    answer = asyncio.run(wrapped(allow_all=True).get_authenticated_user(None, {"username": "root"}))
    assert answer["name"] == "root" and answer["admin"] is False
    assert without_hub_admins("shared-password").__name__ == "SPESharedPasswordAuthenticator"
    with pytest.raises(TypeError):
        without_hub_admins(dict)


def test_project_access_groups_researchers_and_gives_project_admins_read_and_stop():
    access = project_access([("p", "alice", "researcher"), ("p", "pat", "project_admin"),
                             ("p", "carol", "output_checker"), ("q", "bob", "researcher")])
    assert access.groups == {"project-p": frozenset({"alice"}), "project-q": frozenset({"bob"})}
    assert access.roles == {
        "project-admin-p": (("read:servers!group=project-p", "delete:servers!group=project-p"),
                            frozenset({"pat"})),
        "project-admin-q": (("read:servers!group=project-q", "delete:servers!group=project-q"),
                            frozenset()),
    }
