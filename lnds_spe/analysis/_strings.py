"""String factorising over Arrow offsets/data buffers, hashing 8 bytes at a time."""

from __future__ import annotations

import numba
import numpy as np

_MUL = np.uint64(0x9E3779B97F4A7C15)
_START_SLOTS = 1024


@numba.njit(cache=True, nogil=True)
def _grow(table, hashes, n_codes):
    """A table twice the size with every code re-inserted by its stored hash."""
    size = table.shape[0] * 2
    bigger = np.full(size, -1, dtype=np.int32)
    mask = np.uint64(size - 1)
    for c in range(n_codes):
        slot = hashes[c] & mask
        while bigger[slot] != -1:
            slot = (slot + np.uint64(1)) & mask
        bigger[slot] = c
    return bigger


@numba.njit(cache=True, nogil=True)
def _factorize_rows(offsets, words, data, start, hi, table, hashes, firsts, n_codes, codes):
    """Codes for rows start..hi-1 until a new string would pass half load; (next row, codes).

    Hashing and comparing are written out inline: numba leaves helper calls in this loop
    un-inlined and pays array reference counting on every call, about ten times slower.
    A string of at most 8 bytes is identified by its length and hash (the hash of one word
    is a bijection), so only longer strings are compared byte by byte.
    """
    n_words = words.shape[0]
    mask = np.uint64(table.shape[0] - 1)
    limit = table.shape[0] // 2
    for r in range(start, hi):
        s0 = np.int64(offsets[r])
        s1 = np.int64(offsets[r + 1])
        h = np.uint64(s1 - s0) * _MUL
        p = s0
        while p < s1:
            n = min(8, s1 - p)
            k = p >> 3
            shift = p & 7
            if ((p + n - 1) >> 3) < n_words:
                w = words[k] >> np.uint64(8 * shift)
                if shift + n > 8:
                    w |= words[k + 1] << np.uint64(64 - 8 * shift)
            else:  # the tail of the buffer past its last whole aligned word
                w = np.uint64(0)
                for i in range(n):
                    w |= np.uint64(data[p + i]) << np.uint64(8 * i)
            if n < 8:
                w &= (np.uint64(1) << np.uint64(8 * n)) - np.uint64(1)
            h = ((h << np.uint64(5)) | (h >> np.uint64(59))) ^ w
            h *= _MUL
            p += 8
        h ^= h >> np.uint64(32)
        h *= _MUL
        h ^= h >> np.uint64(29)
        slot = h & mask
        while True:
            c = table[slot]
            if c == -1:
                break
            if hashes[c] == h:
                f0 = np.int64(offsets[firsts[c]])
                same = np.int64(offsets[firsts[c] + 1]) - f0 == s1 - s0
                i = 0 if s1 - s0 > 8 else s1 - s0
                while same and i < s1 - s0:
                    same = data[f0 + i] == data[s0 + i]
                    i += 1
                if same:
                    break
            slot = (slot + np.uint64(1)) & mask
        if c == -1:
            if n_codes == limit:
                return r, n_codes
            c = n_codes
            hashes[c] = h
            firsts[c] = r
            table[slot] = c
            n_codes += 1
        codes[r] = c
    return hi, n_codes


@numba.njit(cache=True, nogil=True)
def factorize_range(offsets, words, data, lo, hi, codes):
    """Codes (first-seen order within lo..hi-1) written to codes[lo:hi]; returns first rows.

    The open-addressing table starts small and doubles at half load, so a chunk with few
    distinct strings stays in cache.
    """
    table = np.full(_START_SLOTS, -1, dtype=np.int32)
    hashes = np.empty(_START_SLOTS // 2, dtype=np.uint64)
    firsts = np.empty(_START_SLOTS // 2, dtype=np.int64)
    r, n_codes = _factorize_rows(offsets, words, data, lo, hi, table, hashes, firsts, 0, codes)
    while r < hi:
        hashes = np.concatenate((hashes, np.empty_like(hashes)))
        firsts = np.concatenate((firsts, np.empty_like(firsts)))
        table = _grow(table, hashes, n_codes)
        r, n_codes = _factorize_rows(offsets, words, data, r, hi, table, hashes, firsts,
                                     n_codes, codes)
    return firsts[:n_codes].copy()


@numba.njit(parallel=True, cache=True, nogil=True)
def factorize_parallel(offsets, words, data, threads):
    """Int32 codes in first-seen order and the row of each code's first occurrence.

    Row chunks are factorised in parallel; the chunks' first rows, in chunk order, are then
    factorised once more to give global codes, and each chunk is remapped unless unchanged.
    """
    n = offsets.shape[0] - 1
    chunk = (n + threads - 1) // threads
    codes = np.empty(n, dtype=np.int32)
    local_firsts = [np.empty(0, dtype=np.int64) for _ in range(threads)]
    for t in numba.prange(threads):
        lo = min(n, t * chunk)
        local_firsts[t] = factorize_range(offsets, words, data, lo, min(n, lo + chunk), codes)
    total = 0
    for t in range(threads):
        total += local_firsts[t].shape[0]
    rows = np.empty(total, dtype=np.int64)
    pos = 0
    for t in range(threads):
        rows[pos:pos + local_firsts[t].shape[0]] = local_firsts[t]
        pos += local_firsts[t].shape[0]
    # the first rows as their own small string array, factorised again for global codes
    sub_offsets = np.empty(total + 1, dtype=np.int64)
    sub_offsets[0] = 0
    for j in range(total):
        sub_offsets[j + 1] = sub_offsets[j] + offsets[rows[j] + 1] - offsets[rows[j]]
    sub_data = np.empty(((sub_offsets[total] + 7) // 8) * 8, dtype=np.uint8)
    sub_data[:] = 0
    for j in range(total):  # byte by byte: a slice copy here would be one parfor per row
        src = np.int64(offsets[rows[j]])
        for i in range(sub_offsets[j + 1] - sub_offsets[j]):
            sub_data[sub_offsets[j] + i] = data[src + i]
    merged = np.empty(total, dtype=np.int32)
    global_firsts = factorize_range(sub_offsets, sub_data.view(np.uint64), sub_data, 0, total,
                                    merged)
    base = 0
    for t in range(threads):
        m = local_firsts[t].shape[0]
        remap = merged[base:base + m]
        base += m
        identity = True
        for j in range(m):
            if remap[j] != j:
                identity = False
                break
        if identity:
            continue
        lo = min(n, t * chunk)
        hi = min(n, lo + chunk)
        for i in numba.prange(lo, hi):
            codes[i] = remap[codes[i]]
    return codes, rows[global_firsts]


@numba.njit(parallel=True, cache=True, nogil=True)
def first_seen_remap(indices, n_values, threads):
    """For dictionary indices: each value's first row (n if unused), by parallel row chunks."""
    n = indices.shape[0]
    chunk = (n + threads - 1) // threads
    firsts = np.full((threads, n_values), n, dtype=np.int64)
    for t in numba.prange(threads):
        seen = firsts[t]
        for i in range(min(n, t * chunk), min(n, (t + 1) * chunk)):
            v = indices[i]
            if seen[v] == n:
                seen[v] = i
    out = np.full(n_values, n, dtype=np.int64)
    for t in range(threads):
        for v in range(n_values):
            out[v] = min(out[v], firsts[t, v])
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def apply_remap(indices, remap, threads):
    """Int32 codes remap[indices[i]] for every row."""
    n = indices.shape[0]
    out = np.empty(n, dtype=np.int32)
    chunk = (n + threads - 1) // threads
    for t in numba.prange(threads):
        for i in range(min(n, t * chunk), min(n, (t + 1) * chunk)):
            out[i] = remap[indices[i]]
    return out
