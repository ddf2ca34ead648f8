"""LNDS SPE: a Secure Processing Environment for confidential research data."""

__version__ = "0.1.0"
