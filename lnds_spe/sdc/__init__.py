"""Statistical disclosure control: pure rules, a fused numba kernel, an ACRO-compatible API,
a differencing ledger and checks for files submitted to the airlock."""

from lnds_spe.sdc.acro import ACRO
from lnds_spe.sdc.config import SDCConfig, load_config
from lnds_spe.sdc.filecheck import check_file
from lnds_spe.sdc.ledger import append_to_ledger, read_ledger

__all__ = ["ACRO", "SDCConfig", "append_to_ledger", "check_file", "load_config", "read_ledger"]
