"""Output-checking thresholds: named profiles and ACRO-style YAML files, validated into one value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lnds_spe.errors import SPEError

_PROFILES_FILE = Path(__file__).with_name("profiles.yaml")


class SDCConfigError(SPEError, ValueError):
    """An SDC config that cannot be used: unknown name, unreadable file or unknown keys."""


@dataclass(frozen=True)
class SDCConfig:
    """Thresholds used by every rule; field names are ACRO's default.yaml keys."""

    safe_threshold: int = 10
    safe_dof_threshold: int = 10
    safe_nk_n: int = 2
    safe_nk_k: float = 0.90
    safe_pratio_p: float = 0.10
    check_missing_values: bool = False
    survival_safe_threshold: int = 10
    zeros_are_disclosive: bool = True
    safe_round_base: int = 5
    redaction_threshold: int | None = None
    federated: bool = False
    blocked_extensions: tuple[str, ...] = (".svg", ".gph")
    profile: str = "sdap"

    def as_dict(self) -> dict[str, Any]:
        """Plain mapping, written as config.json next to the outputs."""
        return dataclasses.asdict(self)


def profile_names() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(_read_yaml(_PROFILES_FILE))


def load_config(source: str | Path | dict[str, Any] | None = None) -> SDCConfig:
    """Build a config from a profile name ('sdap', 'opensafely'), a YAML file path, the name
    of a YAML file without its suffix (as ACRO looks configs up) or a mapping.

    A YAML file may name a base profile under `profile:` and override any key.
    """
    if source is None:
        source = "sdap"
    if isinstance(source, dict):
        values = dict(source)
    elif isinstance(source, str) and source in _read_yaml(_PROFILES_FILE):
        values = {"profile": source}
    elif isinstance(source, str | Path) and Path(source).is_file():
        values = _read_yaml(Path(source))
    elif isinstance(source, str) and Path(f"{source}.yaml").is_file():
        values = _read_yaml(Path(f"{source}.yaml"))
    else:
        raise SDCConfigError(
            f"SDC config {source!r} is neither a profile ({', '.join(profile_names())}) "
            "nor a readable YAML file: pass one of those."
        )
    base_name = values.pop("profile", "sdap")
    profiles = _read_yaml(_PROFILES_FILE)
    if base_name not in profiles:
        raise SDCConfigError(f"SDC profile {base_name!r} is unknown: use one of {profile_names()}.")
    merged = {**profiles[base_name], **values, "profile": base_name}
    known = {f.name for f in dataclasses.fields(SDCConfig)}
    unknown = sorted(set(merged) - known - {"suppress"})
    if unknown:
        raise SDCConfigError(f"SDC config has unknown keys {unknown}: use ACRO's default.yaml keys.")
    if "blocked_extensions" in merged:
        merged["blocked_extensions"] = tuple(merged["blocked_extensions"] or ())
    return SDCConfig(**{k: v for k, v in merged.items() if k in known})


def _read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, refusing anything else with a clear message."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise SDCConfigError(f"SDC config file {path.name} must hold a YAML mapping of settings.")
    return data
