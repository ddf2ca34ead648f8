"""`python -m lnds_spe` is the `spe` command."""

from lnds_spe.cli import app

app(prog_name="spe")
