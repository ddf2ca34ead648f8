"""The airlock: nothing leaves a workspace except the approved output files of an export request.

`policies` holds the rules (pure), `store` the frozen copies of submitted files, `records` the
disclosure record and the differencing ledger's tables (pure), and `service` the business logic
that checks every change against the policy and writes it with its audit event.
"""
