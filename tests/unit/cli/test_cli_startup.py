"""CLI1: the `spe` command starts without the heavy libraries (checked as a separate process)."""

import subprocess
import sys

HEAVY = ("pandas", "numpy", "sqlalchemy", "alembic", "boto3", "botocore", "numba")


def modules_after(statement: str) -> set[str]:
    """Top-level modules loaded by a fresh interpreter after running `statement`."""
    code = f"{statement}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_importing_the_cli_loads_no_heavy_module():
    loaded = modules_after("import lnds_spe.cli")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_a_data_holder_upload_path_loads_no_registry():
    loaded = modules_after("import lnds_spe.cli, lnds_spe.ingress, lnds_spe.storage")
    assert loaded.isdisjoint({"pandas", "numpy", "sqlalchemy", "alembic", "numba"}), loaded
