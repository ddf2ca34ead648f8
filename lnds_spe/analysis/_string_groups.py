"""Sums and counts by string keys in one pass: one cache line per distinct string.

For many distinct strings of at most 40 bytes. Each hash partition's table holds, in one
64-byte line per string, its tag and length, its bytes, and the running sum, row count and NaN
count of its rows, so a row costs one cache miss (the line, prefetched rows ahead) and no
code is written, remapped or read again, where factorising then reducing by code costs the
table slot, the arena entry, the rank remap and the group-by's accumulator. Benchmark B's
long strings (1e6 distinct strings of 10–40 bytes, 2e7 rows, 2 threads, AMD EPYC): median
462 ms this way, 564 ms factorised (DuckDB 1.04 s).

Measured and not taken: each thread folding its own row chunk into its own table, the
tables merged after (no hash pass, no scan of every row's hash by every thread): median
912 ms against 744, as each table holds nearly every string; and records of the rows (hash,
row, bytes, value) scattered into 512 partitions whose tables fit in L2: writing the 64-byte
records (1.3 GB) cost more than the misses they save.
"""

from __future__ import annotations

import numba
import numpy as np

from lnds_spe.analysis._intrinsics import prefetch
from lnds_spe.analysis._strings import (
    _BATCH_ROWS,
    _FIXED_WORDS,
    _HIGH,
    _LOW,
    fixed_word,
    merge_first_rows,
    partition_batch,
    partition_share,
)

INLINE_BYTES = 8 * _FIXED_WORDS  # the longest string a line holds
_LINE = 8  # words a line: head, the string's 5 words, the sum, the row and NaN counts
_SUM, _COUNTS = 6, 7
_NAN_ROW = np.uint64(1 << 32)  # a NaN row in the counts word: row count low, NaN count high
_AHEAD = 24  # rows between prefetching a line and its lookup (16–32 alike, 8 about 10% slower)


@numba.njit(cache=True, nogil=True)
def _lines(n_slots):
    """An empty table of n_slots lines, each starting on a 64-byte boundary."""
    raw = np.zeros(n_slots * _LINE + _LINE, dtype=np.uint64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + n_slots * _LINE]


def line_tables(distinct: float, parts: int) -> np.ndarray:
    """Empty line tables, one row each, for `parts` hash partitions sharing about `distinct`
    strings, each at most half full; allocated by numpy (huge pages: lines are read at random)
    where _lines, in a kernel, would get 4 KiB pages."""
    size = partition_share(distinct, parts)[1] * _LINE
    raw = np.zeros(parts * size + _LINE, dtype=np.uint64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + parts * size].reshape(parts, size)


@numba.njit(cache=True, nogil=True, inline="always")
def _load_string(data, s0, length, out):
    """A string of at most 40 bytes as 5 little-endian words into out, zero past its end."""
    whole = s0 + INLINE_BYTES <= data.shape[0]
    for i in range(_FIXED_WORDS):
        if whole:
            out[i] = fixed_word(data, s0, length, i)
        else:  # the last strings of the buffer, byte by byte
            w = np.uint64(0)
            for b in range(min(8, max(length - 8 * i, 0))):
                w |= np.uint64(data[s0 + 8 * i + b]) << np.uint64(8 * b)
            out[i] = w


@numba.njit(cache=True, nogil=True)
def _accumulate_rows(offsets, data, values, hashes, part, parts, start, table, c_hash, slot_of,
                     firsts, n_codes):
    """Fold rows start.. of one hash partition into its lines until the table is half full;
    returns (the row it stopped at, the strings in the table).

    A line's head is the high half of the string's hash above its length + 1 (never 0: 0 is an
    empty line). A new string's hash, line and first row go to c_hash, slot_of and firsts, in
    first-seen order.
    """
    n = hashes.shape[0]
    mask = np.uint64(table.shape[0] // _LINE - 1)
    limit = table.shape[0] // _LINE // 2
    sums = table.view(np.float64)
    words = np.empty(_FIXED_WORDS, dtype=np.uint64)
    batch_rows = np.empty(_BATCH_ROWS, dtype=np.int64)
    batch_hashes = np.empty(_BATCH_ROWS, dtype=np.uint64)
    for block in range(start, n, _BATCH_ROWS):
        kept = partition_batch(hashes, block, part, parts, batch_rows, batch_hashes)
        for q in range(kept):
            if q + _AHEAD < kept:
                prefetch(table, (batch_hashes[q + _AHEAD] & mask) * np.uint64(_LINE))
            r = batch_rows[q]
            h = batch_hashes[q]
            s0 = np.int64(offsets[np.uint64(r)])
            length = np.int64(offsets[np.uint64(r + 1)]) - s0
            _load_string(data, s0, length, words)
            head = (h & _HIGH) | np.uint64(length + 1)
            slot = h & mask
            while True:
                at = slot * np.uint64(_LINE)
                x = table[at]
                if x == 0:
                    break
                diff = x ^ head  # branch-free: the whole line is compared
                for i in range(_FIXED_WORDS):
                    diff |= table[at + np.uint64(1 + i)] ^ words[i]
                if diff == 0:
                    break
                slot = (slot + np.uint64(1)) & mask
            if x == 0:
                if n_codes == limit:
                    return r, n_codes
                table[at] = head
                for i in range(_FIXED_WORDS):
                    table[at + np.uint64(1 + i)] = words[i]
                c_hash[n_codes] = h
                slot_of[n_codes] = slot
                firsts[n_codes] = r
                n_codes += 1
            v = values[np.uint64(r)]
            sums[at + np.uint64(_SUM)] += v if v == v else 0.0
            table[at + np.uint64(_COUNTS)] += np.uint64(1) + (_NAN_ROW if v != v else np.uint64(0))
    return n, n_codes


@numba.njit(cache=True, nogil=True)
def _grow_lines(table, c_hash, slot_of, n_codes):
    """The lines moved into a table of twice as many, each placed by its string's hash."""
    n_slots = 2 * (table.shape[0] // _LINE)
    grown = _lines(n_slots)
    mask = np.uint64(n_slots - 1)
    for c in range(n_codes):
        slot = c_hash[c] & mask
        while grown[slot * np.uint64(_LINE)] != 0:
            slot = (slot + np.uint64(1)) & mask
        old = slot_of[c] * _LINE
        grown[slot * np.uint64(_LINE):(slot + np.uint64(1)) * np.uint64(_LINE)] = \
            table[old:old + _LINE]
        slot_of[c] = slot
    return grown


@numba.njit(cache=True, nogil=True)
def _group_partition(offsets, data, values, hashes, part, parts, table):
    """One hash partition's strings in first-seen order: their first rows, sums, row counts
    and NaN counts; the table doubles whenever it is half full."""
    n = hashes.shape[0]
    capacity = table.shape[0] // _LINE // 2
    c_hash = np.empty(capacity, dtype=np.uint64)
    slot_of = np.empty(capacity, dtype=np.int64)
    firsts = np.empty(capacity, dtype=np.int64)
    r, n_codes = 0, 0
    while True:
        r, n_codes = _accumulate_rows(offsets, data, values, hashes, part, parts, r, table,
                                      c_hash, slot_of, firsts, n_codes)
        if r == n:
            break
        table = _grow_lines(table, c_hash, slot_of, n_codes)
        c_hash = np.concatenate((c_hash, np.empty_like(c_hash)))
        slot_of = np.concatenate((slot_of, np.empty_like(slot_of)))
        firsts = np.concatenate((firsts, np.empty_like(firsts)))
    sums = np.empty(n_codes, dtype=np.float64)
    rows = np.empty(n_codes, dtype=np.int64)
    nans = np.empty(n_codes, dtype=np.int64)
    as_float = table.view(np.float64)
    for c in range(n_codes):
        if c + _AHEAD < n_codes:
            prefetch(table, slot_of[c + _AHEAD] * _LINE)
        at = slot_of[c] * _LINE
        sums[c] = as_float[at + _SUM]
        rows[c] = np.int64(table[at + _COUNTS] & _LOW)
        nans[c] = np.int64(table[at + _COUNTS] >> np.uint64(32))
    return firsts[:n_codes].copy(), sums, rows, nans


@numba.njit(parallel=True, cache=True, nogil=True)
def group_strings(offsets, data, values, hashes, tables):
    """Each distinct string's first row, sum, row count and NaN count, in first-seen order,
    each thread folding the rows of one hash partition into its row of `tables`."""
    parts = tables.shape[0]
    results = [(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64),
                np.empty(0, np.int64)) for _ in range(parts)]
    for t in numba.prange(parts):
        results[t] = _group_partition(offsets, data, values, hashes, t, parts, tables[t])
    rank, bases, first_rows = merge_first_rows([result[0] for result in results],
                                               hashes.shape[0])
    total = first_rows.shape[0]
    sums = np.empty(total, dtype=np.float64)
    rows = np.empty(total, dtype=np.int64)
    nans = np.empty(total, dtype=np.int64)
    for t in range(parts):
        _, part_sums, part_rows, part_nans = results[t]
        for c in range(part_sums.shape[0]):
            g = rank[bases[t] + c]
            sums[g] = part_sums[c]
            rows[g] = part_rows[c]
            nans[g] = part_nans[c]
    return first_rows, sums, rows, nans


@numba.njit(parallel=True, cache=True, nogil=True)
def longest_string(offsets, threads):
    """The byte length of the longest string, by parallel row chunks.

    Ends and starts as two slices, subtracted in the offsets' own type, so the loop is
    vectorised (2e7 rows: 2 ms, 13 ms row by row)."""
    n = offsets.shape[0] - 1
    chunk = (n + threads - 1) // threads
    longest = np.zeros(threads, dtype=np.int64)
    for t in numba.prange(threads):
        lo, hi = min(n, t * chunk), min(n, (t + 1) * chunk)
        ends, starts = offsets[lo + 1:hi + 1], offsets[lo:hi]
        most = 0
        for i in range(ends.shape[0]):
            most = max(most, ends[i] - starts[i])
        longest[t] = most
    return longest.max()
