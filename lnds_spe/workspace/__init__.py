"""Code that runs inside a researcher's workspace (its Jupyter server): imports nothing of the hub.

Only the shared core (`lnds_spe.errors`, `lnds_spe.policy`, `lnds_spe.sdc`, `lnds_spe.analysis`) may
be imported from here; tests/unit/test_import_rules.py checks it.
"""
