"""The four methods, output formats and lengths, the FF1 domain guard and the small-space warning."""

import math
import os
import stat

import pytest

from lnds_spe.pseudonym.errors import DomainTooSmall, KeyStoreError, MalformedIdentifier, NotReversible
from lnds_spe.pseudonym.formats import (
    ALPHABETS,
    LENGTHS,
    MAX_COLLISION,
    PEOPLE,
    OutputFormat,
    collision_probability,
    identifier_space,
    small_space_warning,
)
from lnds_spe.pseudonym.keystore import FileKeyStore, derive_key
from lnds_spe.pseudonym.methods import Pseudonymiser
from lnds_spe.pseudonym.tokens import ProjectConfig

IDS = [f"1985{m:02d}{d:02d}{n:05d}" for m, d, n in [(1, 2, 12345), (3, 4, 99), (12, 31, 54321), (7, 7, 7)]]


def cfg(method, treatment, fmt="alphanumeric", project="cross-border"):
    return ProjectConfig(project, method, treatment, fmt)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_lengths_keep_collisions_below_one_in_a_million_and_are_the_shortest(fmt):
    radix = len(ALPHABETS[fmt])
    assert collision_probability(PEOPLE, radix ** LENGTHS[fmt]) < MAX_COLLISION
    assert collision_probability(PEOPLE, radix ** (LENGTHS[fmt] - 1)) > MAX_COLLISION


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_hmac_same_every_time_in_format_and_length(master, fmt):
    p = Pseudonymiser(cfg("non-reversible", "always-same", fmt), master)
    first, again = p.apply(IDS), p.apply([f"  {i} " for i in IDS])
    assert first == again and len(set(first)) == len(IDS)
    assert all(len(x) == LENGTHS[fmt] and set(x) <= set(ALPHABETS[fmt]) for x in first)
    other = Pseudonymiser(cfg("non-reversible", "always-same", fmt, project="other"), master)
    assert set(other.apply(IDS)).isdisjoint(first)


def test_second_holder_same_project_same_pseudonyms_other_master_differs(master, tmp_path):
    config = cfg("non-reversible", "always-same")
    assert Pseudonymiser(config, master).apply(IDS) == Pseudonymiser(config, bytes(master)).apply(IDS)
    assert Pseudonymiser(config, os.urandom(32)).apply(IDS) != Pseudonymiser(config, master).apply(IDS)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_random_tokens_differ_each_time(master, fmt):
    p = Pseudonymiser(cfg("non-reversible", "always-different", fmt), master)
    a, b = p.apply(IDS), p.apply(IDS)
    assert all(x != y for x, y in zip(a, b, strict=True))
    assert all(len(x) == LENGTHS[fmt] and set(x) <= set(ALPHABETS[fmt]) for x in a + b)
    with pytest.raises(NotReversible):
        p.reverse(a)


def test_ff1_keeps_format_and_reverses(master):
    p = Pseudonymiser(cfg("reversible", "always-same", "numeric"), master)
    out = p.apply(IDS)
    assert out == p.apply(IDS) and out != IDS
    assert all(len(x) == len(i) and x.isdigit() for x, i in zip(out, IDS, strict=True))
    assert p.reverse(out) == IDS
    alnum = Pseudonymiser(cfg("reversible", "always-same", "alphanumeric"), master)
    assert alnum.reverse(alnum.apply(["ab12cd34"])) == ["AB12CD34"]


def test_ff1_domain_guard(master):
    p = Pseudonymiser(cfg("reversible", "always-same", "numeric"), master)
    assert len(p.apply(["123456"])[0]) == 6  # 10**6: the smallest domain allowed
    with pytest.raises(DomainTooSmall, match="identifier 2.*100,000 values"):
        p.apply(["123456", "12345"])
    alpha = Pseudonymiser(cfg("reversible", "always-same", "alphabetic"), master)
    with pytest.raises(DomainTooSmall):
        alpha.apply(["ABCD"])  # 26**4 = 456,976
    assert len(alpha.apply(["ABCDE"])[0]) == 5  # 26**5 = 11.9e6


def test_ff1_refuses_symbols_outside_the_format(master):
    p = Pseudonymiser(cfg("reversible", "always-same", "numeric"), master)
    with pytest.raises(MalformedIdentifier, match="identifier 3 has characters outside the numeric") as exc:
        p.apply(["1234567", "7654321", "12A4567"])
    assert "12A4567" not in str(exc.value)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_aead_different_each_time_and_reverses(master, fmt):
    p = Pseudonymiser(cfg("reversible", "always-different", fmt), master)
    ids = IDS + ["Élodie-Müller 42", "x" * 64]
    a, b = p.apply(ids), p.apply(ids)
    assert all(x != y for x, y in zip(a, b, strict=True))
    assert all(set(x) <= set(ALPHABETS[fmt]) for x in a)
    assert len({len(x) for x in a[:4]}) == 1  # short identifiers share one length class
    assert p.reverse(a) == ids and p.reverse(b) == ids
    other = Pseudonymiser(cfg("reversible", "always-different", fmt, project="other"), master)
    with pytest.raises(MalformedIdentifier, match="pseudonym 1 was not made with this project"):
        other.reverse(a[:1])


def test_aead_altered_pseudonym_refused(master):
    p = Pseudonymiser(cfg("reversible", "always-different", "numeric"), master)
    x = p.apply(IDS[:1])[0]
    flipped = x[:-1] + str((int(x[-1]) + 1) % 10)
    with pytest.raises(MalformedIdentifier):
        p.reverse([flipped])


@pytest.mark.parametrize("bad,why", [("", "empty"), ("   ", "empty"), ("a" * 65, "longer than 64"),
                                     ("12\x0034", "control")])
def test_malformed_identifiers_named_by_position_not_value(master, bad, why):
    p = Pseudonymiser(cfg("non-reversible", "always-same"), master)
    with pytest.raises(MalformedIdentifier, match=f"identifier 2 .*{why}") as exc:
        p.apply(["198501021234", bad])
    assert "198501021234" not in str(exc.value)


def test_small_identifier_space_warning():
    national = [f"19{y:02d}{m:02d}{d:02d}{n:05d}" for y, m, d, n in [(50, 1, 2, 12345), (85, 11, 30, 99)]]
    assert identifier_space(national) < 1e12
    assert "re-identify by lookup" in small_space_warning(national)
    assert small_space_warning(["A1B2C3D4E5F6G7H8", "Z9Y8X7W6V5U4T3S2"]) is None
    assert math.isclose(identifier_space(["123", "456"]), 1000.0)


def test_key_store_file_mode_refusals_and_hkdf(tmp_path):
    ks = FileKeyStore(tmp_path / "k" / "master.key")
    with pytest.raises(KeyStoreError, match="no master key"):
        ks.master_key()
    ks.create()
    assert stat.S_IMODE(ks.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(ks.path.parent.stat().st_mode) == 0o700
    with pytest.raises(KeyStoreError, match="already exists"):
        ks.create()
    master = ks.master_key()
    assert len(master) == 32
    assert derive_key(master, "hmac", "p1") != derive_key(master, "hmac", "p2")
    assert derive_key(master, "hmac", "p1") != derive_key(master, "ff1", "p1")
    assert derive_key(master, "hmac", "p1") == derive_key(ks.master_key(), "hmac", "p1")
    os.chmod(ks.path, 0o644)
    with pytest.raises(KeyStoreError, match="readable by other users"):
        ks.master_key()
    os.chmod(ks.path, 0o600)
    ks.path.write_text("not hex\n")
    with pytest.raises(KeyStoreError, match="not a master key"):
        ks.master_key()
