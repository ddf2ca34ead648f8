"""Outputs of a session with their verdicts, and the release folder ACRO's tools can read."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
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
from lnds_spe.sdc.rules import acro_check_name
from lnds_spe.sdc.tables import MaskMismatchError

ACRO_LAYOUT_VERSION = "1.0.2"
logger = logging.getLogger("lnds_spe.sdc")


class UnknownOutputError(SPEError, ValueError):
    """No output of the session has that name."""


class OutputNameTakenError(SPEError, ValueError):
    """An output with that name exists already."""


class ResultsFormatError(SPEError, ValueError):
    """finalise was asked for a results format other than json or xlsx."""


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
    fair: dict[str, Any] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: datetime.datetime.now().isoformat())

    @property
    def output(self) -> list[Any]:
        """The output tables or file names, under ACRO's attribute name."""
        return self.outputs

    @property
    def sdc(self) -> dict[str, Any]:
        """ACRO's `sdc`: count and [row, col] positions of flagged cells per check.

        ACRO's check names where ACRO has the check (MinimumThresholdCheck, NKCheck, ...);
        the project's further rules keep their own names as extra keys.
        """
        if not self.flags:
            return {}
        named = {acro_check_name(name): np.asarray(mask) for name, mask in self.flags.items()}
        summary: dict[str, Any] = {n: int(np.count_nonzero(m)) for n, m in named.items()}
        cells = {n: [[int(i) for i in pos] for pos in np.argwhere(m)] for n, m in named.items()}
        summary["suppressed"] = bool(self.properties.get("suppressed", False))
        summary.setdefault("negative", 0)
        return {"summary": summary, "cells": cells}

    def __str__(self) -> str:
        """Every field, as ACRO prints a record."""
        return (f"uid: {self.uid}\nstatus: {self.status}\ntype: {self.output_type}\n"
                f"properties: {self.properties}\nsdc: {self.sdc}\nfair: {self.fair}\n"
                f"command: {self.command}\nsummary: {self.summary}\n"
                f"outcome: {self.outcome}\noutput: {self.outputs}\n"
                f"timestamp: {self.timestamp}\ncomments: {self.comments}\n"
                f"exception: {self.exception}\n")


def outcome_frame(table: pd.DataFrame, flags: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-cell text 'ok' or 'rule; rule; ' with the table's labels, as ACRO shows it."""
    wrong = [name for name, mask in flags.items() if mask.shape != table.shape]
    if wrong:
        raise MaskMismatchError(f"The masks {wrong} do not fit the {table.shape} table.")
    names = list(flags)
    # Each distinct combination of rules becomes one bit pattern; build its text once.
    pattern = np.zeros(table.shape, dtype=np.int64)
    for bit, name in enumerate(names):
        pattern |= np.asarray(flags[name], dtype=bool).astype(np.int64) << bit
    distinct, where = np.unique(pattern, return_inverse=True)
    texts = np.array(
        ["".join(f"{acro_check_name(n)}; " for b, n in enumerate(names) if p >> b & 1) or "ok"
         for p in distinct],
        dtype=object,
    )
    text = texts[where.reshape(-1)].reshape(table.shape)
    return pd.DataFrame(text, index=table.index, columns=table.columns)


def release_folder_free(path: str | Path, ext: str | None) -> bool:
    """Whether a release folder may be written at `path`: a results format (`ext`, None when
    there is none) other than json or xlsx raises; an existing folder is logged and is False,
    as ACRO does."""
    if ext is not None and ext not in ("json", "xlsx"):
        raise ResultsFormatError(
            f"Invalid file extension. Options: {{json, xlsx}} (got {ext!r}).")
    if Path(path).exists():
        logger.warning("Results file can not be created. Directory %s already exists. "
                       "Please choose a different directory name.", path)
        return False
    return True


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

    def __init__(self, blocked_extensions: tuple[str, ...] | list[str] = ()) -> None:
        self.results: dict[str, Record] = {}
        self.output_id = 0
        self.blocked_extensions = [e.lower() for e in blocked_extensions]

    def is_blocked(self, filename: str | Path) -> bool:
        """Whether a plot or custom output's extension is blocked (logged, as ACRO)."""
        blocked = Path(filename).suffix.lower() in self.blocked_extensions
        if blocked:
            logger.warning("Blocked file extension %s: files with extension %s are not "
                           "allowed.", filename, Path(filename).suffix)
        return blocked

    def add(self, **kwargs: Any) -> Record:
        """Create and store a record with the next uid."""
        uid = f"output_{self.output_id}"
        self.output_id += 1
        record = Record(uid=uid, **kwargs)
        self.results[uid] = record
        return record

    def get(self, key: str, action: str = "unable to find {key}, key not found") -> Record:
        """A record by uid; an unknown one raises with ACRO's message (`action`) and the
        names of the known outputs."""
        if key not in self.results:
            raise UnknownOutputError(
                f"{action.format(key=key)} (known outputs: {list(self.results)}).")
        return self.results[key]

    def get_keys(self) -> list[str]:
        """Names of the outputs, in order."""
        return list(self.results)

    def get_index(self, index: int) -> Record:
        """The output at a position (negative counts from the end), as ACRO's records."""
        return self.results[list(self.results)[index]]

    def remove(self, key: str) -> None:
        """Drop an output from the session."""
        self.get(key, "unable to remove {key}, key not found")
        del self.results[key]

    def rename(self, old: str, new: str) -> None:
        """Give an output a new uid."""
        record = self.get(old, "unable to rename {key}, key not found")
        if new in self.results:
            raise OutputNameTakenError(
                f"unable to rename, {new} already exists: choose another name.")
        record.uid = new
        self.results = {(new if k == old else k): v for k, v in self.results.items()}

    def add_comments(self, output: str, comment: str) -> None:
        """Attach a comment for the checkers."""
        self.get(output).comments.append(comment)

    def add_exception(self, output: str, reason: str) -> None:
        """Ask checkers to release a failing/review output, giving the reason."""
        self.get(output, "unable to add exception: {key} not found").exception = reason

    def print(self) -> str:
        """Print and return every output, as ACRO's records print them."""
        text = "".join(f"{record}\n" for record in self.results.values())
        print(text)
        return text

    def validate_outputs(self) -> None:
        """Ask the researcher for the reason of every failing/review output without one."""
        for record in self.results.values():
            if record.status != "pass" and not record.exception:
                print(f"{record}\nThe status of the record above is: {record.status}.\n"
                      "Please explain why an exception should be granted.")
                record.exception = input("")

    def results_document(self, file_names: dict[str, list[str]]) -> dict[str, Any]:
        """results.json content in ACRO 1.0.2's layout (check names, `fair`, `tool`)."""
        results = {}
        for uid, record in self.results.items():
            sdc = record.sdc
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
                "fair": record.fair,
            }
        return {
            "version": ACRO_LAYOUT_VERSION,
            "tool": {"@type": "SoftwareApplication", "name": "lnds-spe sdc",
                     "version": __version__, "acro_compatible": ACRO_LAYOUT_VERSION},
            "results": results,
        }

    def finalise(self, path: str | Path, ext: str, config: SDCConfig) -> Path | None:
        """Write the release folder atomically: outputs, results, config, sha256 checksums.

        An existing folder is left untouched and nothing is written (None), as ACRO does.
        Session summaries are "do not release" material and never enter this folder.
        """
        target = Path(path)
        if not release_folder_free(target, ext):
            return None
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
        """results.xlsx as ACRO lays it out: a `description` sheet, then one sheet per output
        with its command, summary, outcome and tables (custom outputs have no sheet)."""
        tabular = {uid: r for uid, r in self.results.items() if r.output_type != "custom"}
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            pd.DataFrame({"Sheet": list(tabular),
                          "Command": [r.command for r in tabular.values()],
                          "Summary": [r.summary for r in tabular.values()]}).to_excel(
                writer, sheet_name="description", index=False)
            for uid, record in tabular.items():
                sheet = uid[:31]
                pd.DataFrame([record.command, record.summary],
                             index=["Command", "Summary"]).to_excel(writer, sheet_name=sheet)
                if record.outcome is not None:
                    record.outcome.to_excel(writer, sheet_name=sheet, startrow=4)
                for output in record.outputs:
                    if isinstance(output, pd.DataFrame):
                        start = 1 + writer.sheets[sheet].max_row
                        output.to_excel(writer, sheet_name=sheet, startrow=start)


def _write_checksums(folder: Path) -> None:
    """checksums/<file>.txt holding each file's sha256, as ACRO lays them out."""
    sums = folder / "checksums"
    sums.mkdir()
    for item in sorted(folder.iterdir()):
        if item.is_file():
            digest = hashlib.sha256(item.read_bytes()).hexdigest()
            (sums / f"{item.name}.txt").write_text(digest, "utf-8")


def write_evidence(path: str | Path, evidence: dict[str, dict[str, Any]],
                   config: SDCConfig) -> None:
    """Federated mode: evidence.json (ACRO's manifest) with one CSV per interim table."""
    folder = Path(path)
    folder.mkdir(parents=True)
    outputs = {}
    for uid, entry in evidence.items():
        files = {}
        for name, csv_text in entry["interim_tables"].items():
            files[name] = f"{uid}_{name}.csv"
            (folder / files[name]).write_text(csv_text, "utf-8")
        outputs[uid] = {**entry, "interim_tables": files}
    document = {"version": ACRO_LAYOUT_VERSION, "outputs": outputs}
    (folder / "evidence.json").write_text(json.dumps(document, indent=4), "utf-8")
    (folder / "config.json").write_text(json.dumps(config.as_dict(), indent=4), "utf-8")


def session_summary(records: Records) -> dict[str, Any]:
    """Counts of outputs by verdict and type: for the researcher, never for the release."""
    statuses: dict[str, int] = {}
    types: dict[str, int] = {}
    for record in records.results.values():
        statuses[record.status] = statuses.get(record.status, 0) + 1
        types[record.output_type] = types.get(record.output_type, 0) + 1
    return {"total_outputs": len(records.results), "status_counts": statuses, "type_counts": types}
