"""HTTP services run by JupyterHub beside the hub, thin over the SPE's modules."""
