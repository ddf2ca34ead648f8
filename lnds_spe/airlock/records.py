"""What the airlock writes down: count tables for the differencing ledger, automatic findings per
file, and the machine-readable disclosure record of a release. Pure apart from reading a CSV."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lnds_spe.sdc.ledger import CountTable, differencing_findings

RECORD_SCHEMA = "lnds-spe/disclosure-record/1"
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
MARGIN_LABELS = {"All", "Total", "total", "all"}


def count_table_from_csv(output: str, path: Path) -> CountTable | None:
    """A count table from a CSV/TSV output (label columns, then integer counts; empty = hidden).

    One count column: a table over its label columns. Several (a crosstab as pandas writes it):
    the headers are the categories of one more variable, named `columns`. Margin rows and
    columns (`All`, `Total`) are dropped: they follow from the cells. Anything else (non-counts,
    no labels) is not a count table: None.
    """
    separator = TABLE_SUFFIXES.get(path.suffix.lower())
    if separator is None:
        return None
    try:
        frame = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError):
        return None
    labels, counts = _split_labels(frame)
    counts = [c for c in counts if c not in MARGIN_LABELS]
    if not labels or not counts:
        return None
    frame = frame[~frame[labels].isin(MARGIN_LABELS).any(axis=1)]
    values = frame[counts].replace("", np.nan).astype(float)
    finite = values.to_numpy()[~np.isnan(values.to_numpy())]
    if finite.size and not (np.all(finite == np.round(finite)) and np.all(finite >= 0)):
        return None
    keys = [tuple(row) for row in frame[labels].astype(str).itertuples(index=False)]
    cells: dict[tuple[str, ...], int | None] = {}
    if len(counts) == 1:
        variables = tuple(labels)
        for key, value in zip(keys, values[counts[0]].tolist(), strict=True):
            cells[key] = None if np.isnan(value) else int(value)
    else:
        variables = (*labels, "columns")
        for key, row in zip(keys, values.itertuples(index=False), strict=True):
            for category, value in zip(counts, row, strict=True):
                cells[(*key, str(category))] = None if np.isnan(value) else int(value)
    order = sorted(range(len(variables)), key=lambda i: variables[i])
    return CountTable(output, tuple(variables[i] for i in order),
                      {tuple(k[i] for i in order): v for k, v in cells.items()})


def _split_labels(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Label columns (any non-numeric cell) and count columns (numbers or empty), in order."""
    labels, counts = [], []
    for column in frame.columns:
        cells = frame[column]
        numeric = pd.to_numeric(cells.replace("", np.nan), errors="coerce")
        is_count = numeric.notna().sum() == (cells != "").sum() and (cells != "").any()
        if is_count and labels:
            counts.append(str(column))
        else:
            labels.append(str(column))
    return labels, counts


def differencing_by_file(new_tables: list[CountTable], released: list[CountTable],
                         threshold: int) -> dict[str, list[dict[str, Any]]]:
    """Findings per new output, each naming both tables: against every released table and the
    request's other outputs."""
    findings: dict[str, list[dict[str, Any]]] = {}
    for table in new_tables:
        others = released + [t for t in new_tables if t is not table]
        for finding in differencing_findings(table, others, threshold):
            combined_with = finding.other if finding.output == table.output else finding.output
            findings.setdefault(table.output, []).append({
                "table": table.output, "combined_with": combined_with,
                "hidden_in": finding.output, "cells": [list(c) for c in finding.cells],
                "reason": finding.reason})
    return findings


def ledger_cells(table: CountTable) -> list[list]:
    """A table's cells as JSON rows: labels then the shown count (null when hidden)."""
    return [[*labels, count] for labels, count in sorted(table.cells.items())]


def table_from_ledger(output: str, variables: list[str], cells: list[list]) -> CountTable:
    """A released table back from its ledger row."""
    return CountTable(output, tuple(variables), {tuple(str(x) for x in c[:-1]): c[-1] for c in cells})


def acro_results_by_file(results_json: bytes) -> dict[str, dict[str, Any]]:
    """ACRO's verdicts from a session's results.json, keyed by the output file names it lists."""
    try:
        document = json.loads(results_json)
    except ValueError:
        return {}
    results = document.get("results", document) if isinstance(document, dict) else {}
    by_file: dict[str, dict[str, Any]] = {}
    for uid, output in results.items() if isinstance(results, dict) else ():
        if not isinstance(output, dict):
            continue
        for entry in output.get("files", []) or []:
            name = entry.get("name") if isinstance(entry, dict) else entry
            if isinstance(name, str):
                by_file[Path(name).name] = {
                    "uid": uid, "status": output.get("status"), "type": output.get("type"),
                    "summary": output.get("summary"), "exception": output.get("exception"),
                    "comments": output.get("comments", []),
                    "sdc": entry.get("sdc") if isinstance(entry, dict) else None}
    return by_file


def disclosure_record(*, request: dict[str, Any], files: list[dict[str, Any]],
                      reviews: list[dict[str, Any]], comments: list[dict[str, Any]],
                      rules: dict[str, Any], released_by: str, released_at: str,
                      software_version: str) -> dict[str, Any]:
    """The machine-readable record shipped with every release (pure: plain values in and out)."""
    return {
        "schema": RECORD_SCHEMA,
        "software": {"name": "lnds-spe", "version": software_version},
        "request": request,
        "released_by": released_by,
        "released_at": released_at,
        "rules": rules,
        "files": files,
        "reviews": reviews,
        "comments": comments,
    }


def canonical_record_text(record: dict[str, Any]) -> str:
    """The record as stored in the bundle: sorted keys, indented, UTF-8."""
    return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
