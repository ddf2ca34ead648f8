"""Project tokens: sealed (unreadable), signed (unforgeable), bound to a project and a service."""

import base64
import json
import os

import pytest

from lnds_spe.pseudonym.errors import InvalidToken
from lnds_spe.pseudonym.tokens import PREFIX, ProjectConfig, issue_token, open_token


def test_token_round_trip_and_many_per_holder(master):
    config = ProjectConfig("cross-border", "reversible", "always-same", "numeric")
    a, b = issue_token(master, config, "IGSS"), issue_token(master, config, "IGSS")
    assert a != b and a.startswith(PREFIX)
    ta, tb = open_token(master, a, "cross-border"), open_token(master, b)
    assert ta.config == tb.config == config and ta.holder == "IGSS" and ta.token_id != tb.token_id


def test_token_is_sealed(master):
    text = issue_token(master, ProjectConfig("secret-project", "reversible", "always-same", "numeric"), "IAB")
    raw = base64.urlsafe_b64decode(text[len(PREFIX):] + "==")
    assert b"secret-project" not in raw and b"IAB" not in raw and b"reversible" not in raw


def test_bad_tokens_refused(master):
    good = issue_token(master, ProjectConfig("p1", "non-reversible", "always-same", "alphabetic"), "h")
    with pytest.raises(InvalidToken, match="not a project token"):
        open_token(master, "hello")
    with pytest.raises(InvalidToken, match="not issued by this service or was altered"):
        open_token(master, good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"))
    with pytest.raises(InvalidToken, match="not issued by this service"):
        open_token(os.urandom(32), good)
    with pytest.raises(InvalidToken, match="another project"):
        open_token(master, good, project="p2")
    with pytest.raises(InvalidToken, match="damaged"):
        open_token(master, PREFIX + "@@@@")
    with pytest.raises(ValueError):
        ProjectConfig("p1", "maybe", "always-same", "numeric")
    assert json.loads(json.dumps(open_token(master, good).config.project)) == "p1"
