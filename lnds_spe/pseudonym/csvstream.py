"""Replace one column of a CSV file of any size, batch by batch, in constant memory.

The output is written under a temporary name beside the target and renamed only when every row
is done; on any error the temporary file is deleted, so a failed run writes nothing.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path

from lnds_spe.pseudonym.errors import EmptyInput, MalformedIdentifier

BATCH_ROWS = 5_000


def transform_column(source: Path, target: Path, column: str,
                     convert: Callable[[list[str], int], list[str]],
                     advance: Callable[[int], None] = lambda n: None, batch_rows: int = BATCH_ROWS) -> int:
    """Write `target` as `source` with `column` passed through `convert(values, first_row)`; rows done."""
    tmp = target.with_name(f".{target.name}.partial")
    rows = 0
    try:
        with source.open("rb") as raw, tmp.open("w", newline="", encoding="utf-8") as out:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader, writer = csv.reader(text), csv.writer(out)
            header = next(reader, None)
            if not header or column not in header:
                raise EmptyInput(f"{source}: no column {column!r} in the header "
                                 f"({', '.join(header or [])[:200] or 'empty file'})")
            index = header.index(column)
            writer.writerow(header)
            done_bytes = 0
            batch: list[list[str]] = []
            for record in reader:
                if len(record) <= index:
                    row = rows + len(batch) + 1
                    raise MalformedIdentifier(f"{source}: row {row} has no {column!r} value")
                batch.append(record)
                if len(batch) >= batch_rows:
                    rows = _flush(batch, index, rows, convert, writer)
                    advance(raw.tell() - done_bytes)
                    done_bytes = raw.tell()
            rows = _flush(batch, index, rows, convert, writer)
            advance(raw.tell() - done_bytes)
        if rows == 0:
            raise EmptyInput(f"{source}: column {column!r} has no values")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def _flush(batch: list[list[str]], index: int, rows: int,
           convert: Callable[[list[str], int], list[str]], writer) -> int:
    if not batch:
        return rows
    converted = convert([record[index] for record in batch], rows + 1)
    for record, value in zip(batch, converted, strict=True):
        record[index] = value
    writer.writerows(batch)
    done = rows + len(batch)
    batch.clear()
    return done
