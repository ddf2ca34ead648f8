"""Checks for a file submitted to the airlock without the wrapper: type, size, structure, and
the table rules for CSV/TSV count tables. Returns a plain JSON-serialisable verdict.

Only count tables can pass by rule. Every other file that clears the structural checks
(free text, markdown, JSON, images, SVG/HTML, notebooks) goes to `review`: a checker must
read it, as ACRO sends custom outputs to review."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lnds_spe.sdc import rules
from lnds_spe.sdc.config import SDCConfig

ALLOWED_SUFFIXES = {".csv", ".tsv", ".txt", ".md", ".json", ".png", ".jpg", ".jpeg", ".svg",
                    ".html", ".htm", ".ipynb"}
MAX_BYTES = 10 * 1024 * 1024
MAX_TABLE_ROWS = 5000
IDENTIFIER_PATTERN = re.compile(
    r"(^|_|\b)(id|ids|nhs|nhs_?number|patient|person|pseudo|name|surname|forename|dob|"
    r"birth_?date|date_?of_?birth|postcode|zip|email|phone|address|ssn|nino)($|_|\b)",
    re.IGNORECASE,
)
_SCRIPT_PATTERN = re.compile(r"<script|\son\w+\s*=|javascript:", re.IGNORECASE)
_EMBEDDED_PATTERN = re.compile(r"data:|<foreignObject|<image|xlink:href\s*=\s*['\"](?!#)",
                               re.IGNORECASE)
FREE_FORM_REASON = "free-form file: no rule can check it, a checker must read it"
_MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff"}


def check_file(path: str | Path, config: SDCConfig | None = None) -> dict[str, Any]:
    """Verdict for one file: {'path', 'kind', 'status', 'reasons', 'flagged'}."""
    config = config or SDCConfig()
    path = Path(path)
    suffix = path.suffix.lower()
    result: dict[str, Any] = {"path": path.name, "kind": suffix.lstrip("."), "status": "pass",
                              "reasons": [], "flagged": {}}
    if not path.is_file():
        return _fail(result, "file does not exist or is not a regular file")
    if suffix not in ALLOWED_SUFFIXES:
        return _fail(result, f"file type {suffix or '(none)'} is not on the allow-list")
    size = path.stat().st_size
    if size > MAX_BYTES:
        return _fail(result, f"file is {size} bytes, above the {MAX_BYTES} byte limit")
    data = path.read_bytes()
    if suffix in _MAGIC and not data.startswith(_MAGIC[suffix]):
        return _fail(result, f"content is not a {suffix} image")
    if suffix in (".svg", ".html", ".htm"):
        text = data.decode("utf-8", errors="replace")
        if _SCRIPT_PATTERN.search(text):
            return _fail(result, "contains scripts or event handlers")
        if suffix == ".svg" and _EMBEDDED_PATTERN.search(text):
            return _fail(result, "SVG embeds data or external content")
    if suffix == ".ipynb" and _check_notebook(result, data)["status"] == "fail":
        return result
    if suffix in (".csv", ".tsv") or (suffix == ".txt" and b"\t" in data[:4096]):
        return _check_table(result, path, "\t" if suffix != ".csv" else ",", config)
    if suffix == ".json":
        try:
            json.loads(data)
        except ValueError:
            return _fail(result, "not valid JSON")
    _review(result, FREE_FORM_REASON)
    return result


def _fail(result: dict[str, Any], reason: str) -> dict[str, Any]:
    """Mark a verdict failed with a reason."""
    result["status"] = "fail"
    result["reasons"].append(reason)
    return result


def _review(result: dict[str, Any], reason: str) -> None:
    """Ask a checker to look, unless already failed."""
    if result["status"] == "pass":
        result["status"] = "review"
    result["reasons"].append(reason)


def _check_notebook(result: dict[str, Any], data: bytes) -> dict[str, Any]:
    """Notebooks leave only with every output stripped."""
    try:
        notebook = json.loads(data)
    except ValueError:
        return _fail(result, "notebook is not valid JSON")
    for cell in notebook.get("cells", []):
        if cell.get("outputs") or cell.get("attachments"):
            return _fail(result, "notebook has outputs: clear all outputs before exporting")
    return result


def _check_table(
    result: dict[str, Any], path: Path, separator: str, config: SDCConfig
) -> dict[str, Any]:
    """Structural checks, then threshold/zeros/rounding checks on integer count cells."""
    try:
        table = pd.read_csv(path, sep=separator)
    except (ValueError, pd.errors.ParserError) as error:
        return _fail(result, f"cannot be read as a table: {error}")
    if len(table) > MAX_TABLE_ROWS:
        return _fail(result, f"{len(table)} rows, above the {MAX_TABLE_ROWS} row limit "
                             "(row-level data may not leave)")
    identifiers = [str(c) for c in table.columns if IDENTIFIER_PATTERN.search(str(c))]
    if identifiers:
        return _fail(result, f"identifier-looking columns: {identifiers}")
    numeric = table.select_dtypes(include="number")
    labels = table.drop(columns=numeric.columns)
    for column in labels.columns:
        series = labels[column].dropna().astype(str)
        if len(series) > 20 and series.nunique() == len(series):
            _review(result, f"column {column!r} has a distinct value on every row")
    if numeric.empty:
        _review(result, f"no count cells to check: {FREE_FORM_REASON}")
        return result
    values = numeric.to_numpy(dtype=float)
    column_positions = [table.columns.get_loc(c) for c in numeric.columns]
    finite = values[~np.isnan(values)]
    if finite.size and np.all(finite == np.round(finite)) and np.all(finite >= 0):
        if rules.looks_midpoint6_rounded(finite):
            result["rounding"] = "midpoint6"
            return result
        if rules.looks_rounded_to_base(finite, config.safe_round_base) and finite.max() > 0:
            result["rounding"] = f"base{config.safe_round_base}"
            return result
        flags = {
            rules.THRESHOLD: rules.threshold_mask(values, config.safe_threshold,
                                                  config.zeros_are_disclosive) & ~np.isnan(values),
            rules.ZEROS: rules.zeros_mask(values, config.zeros_are_disclosive),
        }
        for name, mask in flags.items():
            cells = [[int(i), int(column_positions[j])] for i, j in np.argwhere(mask)]
            if cells:
                result["flagged"][name] = cells
                _fail(result, f"{name}: {len(cells)} cells")
    else:
        _review(result, "table holds non-count values: magnitude rules need the unit-level data")
    return result
