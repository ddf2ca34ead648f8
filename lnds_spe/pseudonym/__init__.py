"""Identifier management and pseudonymisation (IPMS) and linkage by proximity.

Pure modules (`formats`, `methods`, `tokens`, `oprf`, `clk`, `match`) take keys and values and
return values; `keystore` is the only one that reads or writes a file (the master key), and
`service` adds roles and the audit file around them. Identifiers and pseudonyms are never stored.
"""
