"""Differencing across outputs: a ledger of released count tables and the pure checks over it.

Ledger file format (kept by the airlock, one released table per line, JSON lines, UTF-8):
  {"project": str, "request": str, "output": str, "released_at": ISO-8601 str,
   "variables": [var, ...],                      # sorted variable names
   "cells": [[label, ..., shown_count_or_null], ...]}   # labels as strings, in variable order
A null count is a cell that was suppressed or redacted in the release.
"""

from __future__ import annotations

import datetime
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lnds_spe.errors import SPEError


@dataclass(frozen=True)
class CountTable:
    """Shown counts of one output keyed by its variables' labels (None = hidden)."""

    output: str
    variables: tuple[str, ...]
    cells: dict[tuple[str, ...], int | None]

    def total_shown(self) -> int:
        """Sum of the visible cells."""
        return sum(v for v in self.cells.values() if v is not None)


@dataclass(frozen=True)
class DifferencingFinding:
    """A cell of `output` that subtracting `other` from it (or it from `other`) gives away."""

    output: str
    other: str
    cells: tuple[tuple[str, ...], ...]
    reason: str


def count_table_from_frame(output: str, counts: pd.DataFrame, hidden: np.ndarray) -> CountTable:
    """CountTable from a counts frame (rows x columns) and its hidden-cell mask."""
    row_names = [str(n) for n in counts.index.names]
    # A single-column table (e.g. crosstab against a constant) is one-way in its rows.
    one_way = len(counts.columns) == 1
    col_names = [] if one_way else [str(n) for n in counts.columns.names if n is not None]
    names = row_names + col_names
    order = sorted(range(len(names)), key=lambda i: names[i])
    # Labels are turned into strings once per row and per column, not once per cell.
    row_keys = [_string_key(label) for label in counts.index]
    col_keys = [_string_key(label) if col_names else () for label in counts.columns]
    shown = counts.to_numpy().tolist()
    hidden_cells = np.asarray(hidden, dtype=bool).tolist()
    cells: dict[tuple[str, ...], int | None] = {}
    for i, row_key in enumerate(row_keys):
        for j, col_key in enumerate(col_keys):
            labels = row_key + col_key
            cells[tuple(labels[k] for k in order)] = None if hidden_cells[i][j] else int(shown[i][j])
    return CountTable(output, tuple(names[k] for k in order), cells)


def _string_key(label: object) -> tuple[str, ...]:
    """A row or column label (tuple for MultiIndex) as a tuple of strings."""
    return tuple(str(x) for x in label) if isinstance(label, tuple) else (str(label),)


def margin_findings(big: CountTable, small: CountTable, threshold: int) -> list[DifferencingFinding]:
    """Hidden cells of `big` recoverable as a margin of `small` minus the shown cells of `big`."""
    if not set(small.variables) < set(big.variables):
        return []
    positions = [big.variables.index(v) for v in small.variables]
    groups: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
    for labels in big.cells:
        groups[tuple(labels[p] for p in positions)].append(labels)
    findings = []
    for group, members in groups.items():
        hidden = [m for m in members if big.cells[m] is None]
        margin = small.cells.get(group)
        if not hidden or margin is None:
            continue
        recovered = margin - sum(big.cells[m] or 0 for m in members)
        if 0 < recovered < threshold:
            findings.append(
                DifferencingFinding(
                    big.output,
                    small.output,
                    tuple(hidden),
                    f"{len(hidden)} hidden cell(s) of {big.output} add up to {recovered}, "
                    f"recoverable from {small.output} {dict(zip(small.variables, group, strict=True))}",
                )
            )
    return findings


def population_findings(a: CountTable, b: CountTable, threshold: int) -> list[DifferencingFinding]:
    """Same table over nested populations differing by fewer units than the threshold."""
    if a.variables != b.variables:
        return []
    changed = {}
    for key in a.cells.keys() | b.cells.keys():
        mine, theirs = a.cells.get(key, 0), b.cells.get(key, 0)
        if mine is not None and theirs is not None and mine != theirs:
            changed[key] = mine - theirs
    if not changed:
        return []
    signs = {np.sign(d) for d in changed.values()}
    gap = abs(sum(changed.values()))
    if len(signs) == 1 and 0 < gap < threshold:
        return [
            DifferencingFinding(
                a.output,
                b.output,
                tuple(sorted(changed)),
                f"{a.output} and {b.output} cover populations differing by {gap} unit(s): "
                "their difference shows those units' categories",
            )
        ]
    return []


def differencing_findings(
    new: CountTable, earlier: list[CountTable], threshold: int
) -> list[DifferencingFinding]:
    """Every way the new table and an earlier one (session or released) difference each other."""
    findings: list[DifferencingFinding] = []
    for other in earlier:
        findings += margin_findings(new, other, threshold)
        findings += margin_findings(other, new, threshold)
        findings += population_findings(new, other, threshold)
    return findings


def read_ledger(path: str | Path, project: str | None = None) -> list[CountTable]:
    """Released tables from a ledger file (all, or one project's); a missing file is empty."""
    path = Path(path)
    if not path.exists():
        return []
    tables = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                variables = tuple(entry["variables"])
                cells = {tuple(str(x) for x in c[:-1]): c[-1] for c in entry["cells"]}
            except (ValueError, KeyError, TypeError) as error:
                raise SPEError(
                    f"Ledger {path.name} line {line_number} is not a released-table record "
                    f"({error}): fix or remove that line."
                ) from error
            if project is None or entry.get("project") == project:
                label = f"{entry.get('request', '?')}/{entry.get('output', '?')}"
                tables.append(CountTable(label, variables, cells))
    return tables


def ledger_record(project: str, request: str, table: CountTable) -> dict:
    """The JSON-lines record of one released table."""
    return {
        "project": project,
        "request": request,
        "output": table.output,
        "released_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "variables": list(table.variables),
        "cells": [list(labels) + [count] for labels, count in sorted(table.cells.items())],
    }


def append_to_ledger(path: str | Path, project: str, request: str, table: CountTable) -> None:
    """Append one released table as a single line, flushed to disk before returning."""
    line = json.dumps(ledger_record(project, request, table), sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
