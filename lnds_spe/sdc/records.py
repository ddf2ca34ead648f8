"""Outputs of a session with their verdicts, and the release folder ACRO's tools can read."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lnds_spe import __version__
from lnds_spe.errors import SPEError
from lnds_spe.sdc.config import SDCConfig

ACRO_LAYOUT_VERSION = "1.0.2"


@dataclass
class Record:
    """One output: what was computed, its verdict, flagged cells per rule and the files to write."""

    uid: str
    status: str
    output_type: str
    properties: dict[str, Any]
    command: str
    summary: str
    outputs: list[Any]  # DataFrames, or paths of files (plots, custom outputs)
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    outcome: pd.DataFrame | None = None
    comments: list[str] = field(default_factory=list)
    exception: str = ""
    timestamp: str = field(default_factory=lambda: datetime.datetime.now().isoformat())

    def sdc_block(self) -> dict[str, Any]:
        """ACRO's per-file `sdc`: count and [row, col] positions of flagged cells per rule."""
        if not self.flags:
            return {}
        summary = {name: int(np.count_nonzero(mask)) for name, mask in self.flags.items()}
        cells = {
            name: [[int(i) for i in pos] for pos in np.argwhere(mask)]
            for name, mask in self.flags.items()
        }
        summary["suppressed"] = bool(self.properties.get("suppressed", False))
        return {"summary": summary, "cells": cells}


def outcome_frame(table: pd.DataFrame, flags: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-cell text 'ok' or 'rule; rule; ' with the table's labels, as ACRO shows it."""
    names = [name for name, mask in flags.items() if mask.shape == table.shape]
    # Each distinct combination of rules becomes one bit pattern; build its text once.
    pattern = np.zeros(table.shape, dtype=np.int64)
    for bit, name in enumerate(names):
        pattern |= np.asarray(flags[name], dtype=bool).astype(np.int64) << bit
    distinct, where = np.unique(pattern, return_inverse=True)
    texts = np.array(
        ["".join(f"{n}; " for b, n in enumerate(names) if p >> b & 1) or "ok" for p in distinct],
        dtype=object,
    )
    text = texts[where.reshape(-1)].reshape(table.shape)
    return pd.DataFrame(text, index=table.index, columns=table.columns)


def _label(value: Any) -> str:
    """JSON key for a table label (tuples joined as pandas prints them)."""
    return str(value) if not isinstance(value, tuple) else ", ".join(str(v) for v in value)


def _outcome_json(outcome: pd.DataFrame | None) -> dict[str, dict[str, str]]:
    """Outcome as {column: {row: text}} with string keys."""
    if outcome is None:
        return {}
    return {
        _label(col): {_label(row): str(outcome.iloc[i, j]) for i, row in enumerate(outcome.index)}
        for j, col in enumerate(outcome.columns)
    }


class Records:
    """The session's outputs in creation order, keyed by uid (output_0, output_1, ...)."""

    def __init__(self) -> None:
        self.results: dict[str, Record] = {}
        self._next = 0

    def add(self, **kwargs: Any) -> Record:
        """Create and store a record with the next uid."""
        uid = f"output_{self._next}"
        self._next += 1
        record = Record(uid=uid, **kwargs)
        self.results[uid] = record
        return record

    def get(self, key: str) -> Record:
        """A record by uid, with a clear error naming the known ones."""
        if key not in self.results:
            raise SPEError(f"No output named {key!r}: known outputs are {list(self.results)}.")
        return self.results[key]

    def remove(self, key: str) -> None:
        """Drop an output from the session."""
        self.get(key)
        del self.results[key]

    def rename(self, old: str, new: str) -> None:
        """Give an output a new uid."""
        record = self.get(old)
        if new in self.results:
            raise SPEError(f"Output name {new!r} is taken: choose another name.")
        record.uid = new
        self.results = {(new if k == old else k): v for k, v in self.results.items()}

    def printable(self) -> str:
        """Human-readable listing of every output, its verdict and summary."""
        lines = []
        for uid, record in self.results.items():
            lines.append(f"uid: {uid}\nstatus: {record.status}\ntype: {record.output_type}")
            lines.append(f"properties: {record.properties}\ncommand: {record.command}")
            lines.append(f"summary: {record.summary}")
            if record.outcome is not None:
                lines.append(f"outcome:\n{record.outcome}")
            for output in record.outputs:
                lines.append(f"output:\n{output}")
            lines.append(f"comments: {record.comments}\nexception: {record.exception}\n")
        return "\n".join(lines)

    def results_document(self, file_names: dict[str, list[str]]) -> dict[str, Any]:
        """results.json content in ACRO 1.0.2's layout."""
        results = {}
        for uid, record in self.results.items():
            sdc = record.sdc_block()
            results[uid] = {
                "uid": uid,
                "status": record.status,
                "type": record.output_type,
                "properties": record.properties,
                "files": [
                    {"name": name, "sdc": sdc if record.output_type == "table" else {}}
                    for name in file_names[uid]
                ],
                "outcome": _outcome_json(record.outcome),
                "command": record.command,
                "summary": record.summary,
                "timestamp": record.timestamp,
                "comments": record.comments,
                "exception": record.exception,
            }
        return {
            "version": ACRO_LAYOUT_VERSION,
            "tool": {"name": "lnds-spe sdc", "version": __version__, "acro_compatible": "1.0.2"},
            "results": results,
        }

    def finalise(self, path: str | Path, ext: str, config: SDCConfig) -> Path:
        """Write the release folder atomically: outputs, results, config, sha256 checksums.

        Session summaries are "do not release" material and never enter this folder.
        """
        target = Path(path)
        if target.exists():
            raise SPEError(f"Output folder {target} already exists: choose a new folder name.")
        if ext not in ("json", "xlsx"):
            raise SPEError(f"finalise: ext {ext!r} is not 'json' or 'xlsx'.")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            file_names = self._write_outputs(staging)
            document = self.results_document(file_names)
            (staging / "results.json").write_text(json.dumps(document, indent=4), "utf-8")
            (staging / "config.json").write_text(json.dumps(config.as_dict(), indent=4), "utf-8")
            if ext == "xlsx":
                self._write_excel(staging / "results.xlsx")
            _write_checksums(staging)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def _write_outputs(self, folder: Path) -> dict[str, list[str]]:
        """One CSV per table, a copy of each file output; returns the names per uid."""
        names: dict[str, list[str]] = {}
        for uid, record in self.results.items():
            names[uid] = []
            for position, output in enumerate(record.outputs):
                if isinstance(output, pd.DataFrame):
                    name = f"{uid}_{position}.csv"
                    output.to_csv(folder / name)
                else:
                    source = Path(output)
                    if not source.is_file():
                        raise SPEError(f"Output file {source} of {uid} no longer exists.")
                    name = source.name
                    shutil.copyfile(source, folder / name)
                names[uid].append(name)
        return names

    def _write_excel(self, path: Path) -> None:
        """results.xlsx: a summary sheet and one sheet per output (needs openpyxl)."""
        rows = [
            {"uid": r.uid, "status": r.status, "type": r.output_type, "command": r.command,
             "summary": r.summary, "exception": r.exception, "comments": "; ".join(r.comments)}
            for r in self.results.values()
        ]
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            pd.DataFrame(rows).to_excel(writer, sheet_name="results", index=False)
            for uid, record in self.results.items():
                start = 0
                for output in record.outputs:
                    if isinstance(output, pd.DataFrame):
                        output.to_excel(writer, sheet_name=uid[:31], startrow=start)
                        start += len(output) + output.columns.nlevels + 2


def _write_checksums(folder: Path) -> None:
    """checksums/<file>.txt holding each file's sha256, as ACRO lays them out."""
    sums = folder / "checksums"
    sums.mkdir()
    for item in sorted(folder.iterdir()):
        if item.is_file():
            digest = hashlib.sha256(item.read_bytes()).hexdigest()
            (sums / f"{item.name}.txt").write_text(digest, "utf-8")


def session_summary(records: Records) -> dict[str, Any]:
    """Counts of outputs by verdict and type: for the researcher, never for the release."""
    statuses: dict[str, int] = {}
    types: dict[str, int] = {}
    for record in records.results.values():
        statuses[record.status] = statuses.get(record.status, 0) + 1
        types[record.output_type] = types.get(record.output_type, 0) + 1
    return {"total_outputs": len(records.results), "status_counts": statuses, "type_counts": types}
