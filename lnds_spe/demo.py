"""The demo: one project, its members, an encrypted dataset and a password per account, made idempotently."""

import json
import os
import secrets
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lnds_spe import crypto
from lnds_spe.errors import SPEError
from lnds_spe.ingress import DEMO_PASSPHRASE_FILE, PASSPHRASE_ENV, Recipients, upload_dataset
from lnds_spe.storage import open_store

if TYPE_CHECKING:  # the hub imports this module for its accounts: no pandas or SQLAlchemy then
    import pandas as pd

    from lnds_spe.projects import Registry

DEMO_PROJECT = "demo"
DEMO_USERS = {
    "alice": ["researcher"],
    "bob": ["researcher"],
    "carol": ["output_checker"],
    "dave": ["output_checker"],
}
DEMO_ADMINS = ["admin"]
ACCOUNTS_FILE = "demo-accounts.json"


def demo_survey(rows: int = 2000, seed: int = 7) -> "pd.DataFrame":
    """A small synthetic survey: region, sex, age band and income, for the demo notebook."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    regions = ["North", "South", "East", "West", "Centre"]
    return pd.DataFrame({
        "region": rng.choice(regions, rows, p=[0.3, 0.25, 0.2, 0.15, 0.1]),
        "sex": rng.choice(["F", "M"], rows),
        "age_band": rng.choice(["18-34", "35-49", "50-64", "65+"], rows),
        "income": np.round(rng.lognormal(10.3, 0.6, rows), 2),
    })


def demo_key_passphrase(state_dir: Path) -> str:
    """The demo's key passphrase ($SPE_KEY_PASSPHRASE wins), generated once into the key dir."""
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    path = state_dir / "keys" / DEMO_PASSPHRASE_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        _write_private(path, secrets.token_urlsafe(24))
    return path.read_text()


def _upload_demo_survey(registry: "Registry", state_dir: Path, actor: str) -> None:
    """The data holder's step: encrypt the survey for the SPE's key and upload it to the store."""
    keys = state_dir / "keys"
    if not (keys / crypto.PUBLIC_KEY_NAME).exists():
        crypto.generate_keypair(keys, demo_key_passphrase(state_dir))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "survey"
        source.mkdir()
        demo_survey().to_csv(source / "survey.csv", index=False)
        recipients = Recipients(crypto.load_public_key(keys / crypto.PUBLIC_KEY_NAME))
        upload_dataset(registry, source, DEMO_PROJECT, "survey",
                       store=open_store((state_dir / "store").as_uri()),
                       recipients=recipients, actor=actor)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, under a temporary name first."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)


def init_demo(registry: "Registry", state_dir: Path, actor: str) -> dict | None:
    """Create what is missing of the demo; return the new accounts file, or None if it existed."""
    slugs = {p.slug for p in registry.list_projects()}
    if DEMO_PROJECT not in slugs:
        today = date.today()
        registry.create_project(DEMO_PROJECT, "Demo: regional income survey", today,
                                today + timedelta(days=365), actor=actor,
                                description="Synthetic survey data to try the SPE with.")
    for username, roles in DEMO_USERS.items():
        held = registry.roles_of(DEMO_PROJECT, username)
        for role in roles:
            if role not in held:
                registry.add_member(DEMO_PROJECT, username, role, actor=actor)

    if "survey" not in {d.name for d in registry.datasets(DEMO_PROJECT)}:
        _upload_demo_survey(registry, state_dir, actor)
    accounts, created = ensure_demo_accounts(state_dir)
    return accounts if created else None


def ensure_demo_accounts(state_dir: Path) -> tuple[dict, bool]:
    """The demo accounts file (users, roles, one password each), made on first use: (accounts, new?).

    A file of the old shape (one password shared by every user) is replaced by a new one.
    """
    accounts_file = state_dir / ACCOUNTS_FILE
    if accounts_file.exists():
        try:
            accounts = json.loads(accounts_file.read_text())
        except ValueError:
            raise SPEError(f"{accounts_file} is not valid JSON: delete it and run again") from None
        if isinstance(accounts.get("passwords"), dict):
            return accounts, False
    accounts = {
        "passwords": {name: secrets.token_urlsafe(12) for name in DEMO_USERS}
        | {name: secrets.token_urlsafe(24) for name in DEMO_ADMINS},
        "users": DEMO_USERS,
        "admins": DEMO_ADMINS,
    }
    _write_private(accounts_file, json.dumps(accounts, indent=2))
    return accounts, True
