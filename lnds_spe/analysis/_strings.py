"""String factorising over Arrow offsets/data buffers, hashing 8 bytes at a time.

Row-sized outputs, and the tables of the hash-partitioned plan, are allocated by numpy and
passed in, not allocated inside the kernels: numpy asks for transparent huge pages, while a
kernel's own array is faulted in 4 KiB pages, about a microsecond each on a virtual machine
(100M int32 codes: 115 ms allocated and filled in a kernel, 23 ms when numpy allocated them,
measured on the 2-core benchmark machine), and read at random it misses the TLB.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from lnds_spe.analysis._intrinsics import fold_mul, load_word, prefetch

_MUL = np.uint64(0x9E3779B97F4A7C15)
_START_SLOTS = 1024
_YIELD_ROWS = 64
_SAMPLE_ROWS = 4096
_FIXED_WORDS = 5  # strings up to 40 bytes are loaded as 5 words (fixed_word), unrolled
_AHEAD = 16  # rows between prefetching a table slot, its arena entry, and the lookup
# rows whose partition is tested before any is looked up: a batch's first rows go unprefetched,
# so large batches (1024 rows: B's long-string fold 389 ms median with its hashing, 8192: 344)
_BATCH_ROWS = 8192
_SKETCH_BITS = 12  # 4096 HyperLogLog registers: the distinct count to within about 2%
_SKETCH_SLACK = 1.1  # tables sized for 10% more strings than estimated
# an empty slot in a tagged table: no entry starts at 2**32 - 1 (the arena stops at 2**31 words)
_EMPTY_SLOT = np.uint64(0xFFFFFFFFFFFFFFFF)
_LOW = np.uint64(0xFFFFFFFF)
_HIGH = np.uint64(0xFFFFFFFF00000000)


@numba.njit(cache=True, nogil=True)
def _grow(size, c_hash, c_start, n_codes):
    """A slot table of the given size holding every code, placed by its stored hash."""
    s_hash = np.empty(size, dtype=np.uint64)
    s_info = np.full(size, -1, dtype=np.int64)
    mask = np.uint64(size - 1)
    for c in range(n_codes):
        slot = c_hash[c] & mask
        while s_info[slot] != -1:
            slot = (slot + np.uint64(1)) & mask
        s_hash[slot] = c_hash[c]
        s_info[slot] = (c_start[c] << 32) | c
    return s_hash, s_info


@numba.njit(cache=True, nogil=True)
def _grow_tagged(size, c_hash, c_start, n_codes):
    """As _grow, for a tagged table: one word a slot, the high half of the code's hash above
    the start of its arena entry (all ones when empty); the code is in the entry itself."""
    table = np.full(size, _EMPTY_SLOT, dtype=np.uint64)
    mask = np.uint64(size - 1)
    for c in range(n_codes):
        slot = c_hash[c] & mask
        while table[slot] != _EMPTY_SLOT:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = (c_hash[c] & _HIGH) | np.uint64(c_start[c])
    return table


@numba.njit(cache=True, nogil=True, inline="always")
def _short_word(words, data, s0, s1):
    """A string of at most 8 bytes as one little-endian word, zero past its end.

    Two words are shifted together without branching: a branch on whether the string
    straddles a word boundary is mispredicted often and costs more than the whole lookup.
    """
    k = np.uint64(s0 >> 3)
    if k + np.uint64(1) < np.uint64(words.shape[0]):
        shift = np.uint64(8 * (s0 & 7))
        w = (words[k] >> shift) | ((words[k + np.uint64(1)] << np.uint64(1))
                                   << (np.uint64(63) - shift))
    else:  # the tail of the buffer
        w = np.uint64(0)
        for i in range(s1 - s0):
            w |= np.uint64(data[s0 + i]) << np.uint64(8 * i)
    half = np.uint64(4 * (s1 - s0))
    return w & (((np.uint64(1) << half) << half) - np.uint64(1))


def _word_masks() -> np.ndarray:
    """Row `length`, column i: the bits of word i that a string of `length` bytes fills, for
    strings of at most _FIXED_WORDS words."""
    filled = np.clip(np.arange(8 * _FIXED_WORDS + 1)[:, None] - 8 * np.arange(_FIXED_WORDS), 0, 8)
    return np.array([[(1 << (8 * int(k))) - 1 for k in row] for row in filled], dtype=np.uint64)


# a table rather than two clamps and three shifts a word: the hash pass about 5% faster
_WORD_MASKS = _word_masks()


@numba.njit(cache=True, nogil=True, inline="always")
def fixed_word(data, s0, length, i):
    """Word i of the string of `length` bytes at data[s0:], for strings of at most 40 bytes
    whose 40-byte window ends inside data: one unaligned load, the bytes past its end zeroed."""
    return load_word(data, s0 + 8 * i) & _WORD_MASKS[np.uint64(length), np.uint64(i)]


@numba.njit(cache=True, nogil=True, inline="always")
def _short_hash(w, length):
    """The hash of a string of at most 8 bytes, its word w: one 128-bit multiply, folded.

    Not a bijection, so a lookup compares the word too. The hash before (a multiply, then
    the fmix64 finaliser) was one, so lookups compared no word, but its two dependent
    multiplies made the lookup loop about a third slower.
    """
    return fold_mul(w ^ np.uint64(length), _MUL)


@numba.njit(cache=True, nogil=True)
def _short_hits(offsets, words, data, start, hi, s_hash, s_info, arena, codes):
    """Codes for rows start.. while each is a string of at most 8 bytes already in the table.

    Returns the row it stopped at (hi, a longer string, or a new one). This loop, kept apart
    from _factorize_rows, runs about twice as fast as the same code inside it; the word is
    loaded as in _short_word, written out because that call costs a third more here. A
    row's end offset is the next row's start, read once.
    """
    mask = np.uint64(s_hash.shape[0] - 1)
    n_words = np.uint64(words.shape[0])
    s1 = np.int64(offsets[np.uint64(start)])
    for r in range(start, hi):
        s0 = s1
        s1 = np.int64(offsets[np.uint64(r + 1)])
        length = s1 - s0
        if length > 8:
            return r
        k = np.uint64(s0 >> 3)
        if k + np.uint64(1) < n_words:
            shift = np.uint64(8 * (s0 & 7))
            w = (words[k] >> shift) | ((words[k + np.uint64(1)] << np.uint64(1))
                                       << (np.uint64(63) - shift))
        else:  # the tail of the buffer
            w = np.uint64(0)
            for i in range(length):
                w |= np.uint64(data[s0 + i]) << np.uint64(8 * i)
        half = np.uint64(4 * length)
        w &= ((np.uint64(1) << half) << half) - np.uint64(1)
        h = _short_hash(w, length)
        slot = h & mask
        while True:
            info = s_info[slot]
            if info == -1 or (s_hash[slot] == h
                              and arena[np.uint64(info >> 32)] == np.uint64(length)
                              and arena[np.uint64((info >> 32) + 1)] == w):
                break
            slot = (slot + np.uint64(1)) & mask
        if info == -1:
            return r
        codes[np.uint64(r)] = info & 0xFFFFFFFF
    return hi


@numba.njit(cache=True, nogil=True)
def _factorize_rows(offsets, words, data, start, hi, s_hash, s_info, c_hash, c_start, firsts,
                    arena, n_arena, n_codes, codes):
    """Codes for rows start..hi-1 until the table or arena is full; (next row, codes, arena).

    A slot holds a code's hash, and its code with the start of its copy in the arena: its
    length, then its words (one word for a string of at most 8 bytes, zero for the empty
    string: _short_hits compares it). A lookup thus reads one slot and one compact arena
    entry, not the rows' scattered buffers (those dependent cache misses were most of the
    time). Longer strings' hashing and comparing are written out inline: numba leaves plain
    helper calls in this loop un-inlined and pays array reference counting on every call,
    about ten times slower (the short-string helpers are inlined by numba itself,
    inline="always"). After _YIELD_ROWS rows it hands the next short string back to
    _short_hits.
    """
    n_words = words.shape[0]
    mask = np.uint64(s_hash.shape[0] - 1)
    limit = s_hash.shape[0] // 2
    row_words = np.empty(8, dtype=np.uint64)
    for r in range(start, hi):
        s0 = np.int64(offsets[np.uint64(r)])  # unsigned: no negative-index wraparound
        s1 = np.int64(offsets[np.uint64(r + 1)])
        length = s1 - s0
        j = 0
        if length <= 8:
            if r - start >= _YIELD_ROWS:
                return r, n_codes, n_arena
            row_words[0] = _short_word(words, data, s0, s1)
            h = _short_hash(row_words[0], length)
            j = 1
        else:
            h = np.uint64(length) * _MUL
            if (length + 7) // 8 > row_words.shape[0]:
                row_words = np.empty((length + 7) // 8, dtype=np.uint64)
            p = s0
            while p < s1:
                n = min(8, s1 - p)
                k = p >> 3
                shift = p & 7
                if ((p + n - 1) >> 3) < n_words:
                    w = words[np.uint64(k)] >> np.uint64(8 * shift)
                    if shift + n > 8:
                        w |= words[np.uint64(k + 1)] << np.uint64(64 - 8 * shift)
                else:  # the tail of the buffer past its last whole aligned word
                    w = np.uint64(0)
                    for i in range(n):
                        w |= np.uint64(data[p + i]) << np.uint64(8 * i)
                if n < 8:
                    w &= (np.uint64(1) << np.uint64(8 * n)) - np.uint64(1)
                row_words[np.uint64(j)] = w
                h = ((h << np.uint64(5)) | (h >> np.uint64(59))) ^ w
                h *= _MUL
                p += 8
                j += 1
            h ^= h >> np.uint64(32)
            h *= _MUL
            h ^= h >> np.uint64(29)
        slot = h & mask
        while True:
            info = s_info[slot]
            if info == -1:
                break
            if s_hash[slot] == h:
                a = info >> 32
                same = arena[np.uint64(a)] == np.uint64(length)
                i = 0
                while same and i < j:
                    same = arena[np.uint64(a + 1 + i)] == row_words[np.uint64(i)]
                    i += 1
                if same:
                    break
            slot = (slot + np.uint64(1)) & mask
        if info == -1:
            if n_codes == limit or n_arena + 1 + j > arena.shape[0]:
                return r, n_codes, n_arena
            c = n_codes
            arena[n_arena] = np.uint64(length)
            arena[n_arena + 1:n_arena + 1 + j] = row_words[:j]
            c_hash[c] = h
            c_start[c] = n_arena
            firsts[c] = r
            s_hash[slot] = h
            s_info[slot] = (n_arena << 32) | c
            n_arena += 1 + j
            n_codes += 1
        else:
            c = info & 0xFFFFFFFF
        codes[np.uint64(r)] = c
    return hi, n_codes, n_arena


@numba.njit(cache=True, nogil=True)
def _make_room(offsets, r, hi, n_codes, n_arena, n_slots, c_hash, c_start, firsts, arena):
    """Whether the slot table (n_slots) is at half load, then must double (the caller rebuilds
    it in its layout), with the code arrays doubled; else the arena, doubled if row r
    overflows it."""
    need = 2 + (np.int64(offsets[r + 1]) - np.int64(offsets[r])) // 8 if r < hi else 0
    if n_codes == n_slots // 2:
        c_hash = np.concatenate((c_hash, np.empty_like(c_hash)))
        c_start = np.concatenate((c_start, np.empty_like(c_start)))
        firsts = np.concatenate((firsts, np.empty_like(firsts)))
        return True, c_hash, c_start, firsts, arena
    if n_arena + need > arena.shape[0]:
        arena = np.concatenate((arena, np.empty(max(arena.shape[0], need), np.uint64)))
        if arena.shape[0] >= 1 << 31:
            raise ValueError("factorize: the distinct strings pass 16 GiB")
    return False, c_hash, c_start, firsts, arena


@numba.njit(cache=True, nogil=True)
def factorize_range(offsets, words, data, lo, hi, codes, seed_rows):
    """Codes (first-seen order within rows 0..seed_rows-1, then lo..hi-1) written to
    codes[lo:hi]; returns the first row of each code.

    The seed rows are coded first, into a scratch array: chunks that share them give their
    strings the same codes, so a chunk holding no other string needs no remapping. The
    open-addressing table starts small and doubles at half load, so a chunk with few
    distinct strings stays in cache; the arena of distinct strings doubles when full.
    """
    s_hash, s_info = _grow(_START_SLOTS, np.empty(0, np.uint64), np.empty(0, np.int64), 0)
    c_hash = np.empty(_START_SLOTS // 2, dtype=np.uint64)
    c_start = np.empty(_START_SLOTS // 2, dtype=np.int64)
    firsts = np.empty(_START_SLOTS // 2, dtype=np.int64)
    arena = np.empty(_START_SLOTS * 4, dtype=np.uint64)
    n_codes, n_arena = 0, 0
    for part in range(2):
        r, end, out = (0, seed_rows, np.empty(seed_rows, codes.dtype)) if part == 0 else (
            lo, hi, codes)
        while r < end:
            r = _short_hits(offsets, words, data, r, end, s_hash, s_info, arena, out)
            if r == end:
                break
            r, n_codes, n_arena = _factorize_rows(offsets, words, data, r, end, s_hash,
                                                  s_info, c_hash, c_start, firsts, arena,
                                                  n_arena, n_codes, out)
            doubled, c_hash, c_start, firsts, arena = _make_room(
                offsets, r, end, n_codes, n_arena, s_hash.shape[0], c_hash, c_start, firsts,
                arena)
            if doubled:
                s_hash, s_info = _grow(s_hash.shape[0] * 2, c_hash, c_start, n_codes)
    return firsts[:n_codes].copy()


@numba.njit(cache=True, nogil=True)
def _hash_rows(offsets, words, data, lo, hi, hashes, sketch):
    """The hash of rows lo..hi-1 (as _factorize_rows computes it) written to hashes[lo:hi],
    and each hash counted in the HyperLogLog registers `sketch`."""
    n_words = np.uint64(words.shape[0])
    n_bytes = data.shape[0]
    for r in range(lo, hi):
        s0 = np.int64(offsets[np.uint64(r)])
        s1 = np.int64(offsets[np.uint64(r + 1)])
        length = s1 - s0
        h = np.uint64(length) * _MUL
        if 8 < length <= 8 * _FIXED_WORDS and s0 + 8 * _FIXED_WORDS <= n_bytes:
            for i in range(_FIXED_WORDS):  # a constant count: unrolled, no mispredicted exit
                w = fixed_word(data, s0, length, i)
                mixed = (((h << np.uint64(5)) | (h >> np.uint64(59))) ^ w) * _MUL
                h = mixed if 8 * i < length else h
        else:
            for p in range(s0, max(s1, s0 + 1), 8):
                k = np.uint64(p >> 3)
                if k + np.uint64(1) < n_words:
                    shift = np.uint64(8 * (p & 7))
                    w = (words[k] >> shift) | ((words[k + np.uint64(1)] << np.uint64(1))
                                               << (np.uint64(63) - shift))
                else:  # the tail of the buffer
                    w = np.uint64(0)
                    for i in range(min(8, s1 - p)):
                        w |= np.uint64(data[p + i]) << np.uint64(8 * i)
                half = np.uint64(4 * min(8, s1 - p))
                w &= ((np.uint64(1) << half) << half) - np.uint64(1)
                if length <= 8:
                    h = _short_hash(w, length)
                else:
                    h = ((h << np.uint64(5)) | (h >> np.uint64(59))) ^ w
                    h *= _MUL
        if length > 8:
            h ^= h >> np.uint64(32)
            h *= _MUL
            h ^= h >> np.uint64(29)
        hashes[np.uint64(r)] = h
        register = h >> np.uint64(64 - _SKETCH_BITS)
        rank = leading_zeros((h << np.uint64(_SKETCH_BITS)) | np.uint64(1 << (_SKETCH_BITS - 1)))
        sketch[register] = max(sketch[register], np.uint8(rank + 1))


@numba.njit(cache=True, nogil=True, inline="always")
def partition_batch(hashes, block, part, parts, batch_rows, batch_hashes):
    """The rows of block..block + len(batch_rows) - 1 whose hash falls in partition `part` of
    `parts` (by the hash's high half), with their hashes, packed without a branch per row;
    returns how many."""
    n = hashes.shape[0]
    mine, n_parts = np.uint64(part), np.uint64(parts)
    kept = 0
    for r in range(block, min(n, block + batch_rows.shape[0])):
        h = hashes[np.uint64(r)]
        batch_rows[kept] = r
        batch_hashes[kept] = h
        kept += ((h >> np.uint64(32)) * n_parts) >> np.uint64(32) == mine
    return kept


@numba.njit(cache=True, nogil=True)
def merge_first_rows(part_firsts, n):
    """The partitions' ascending first rows (row numbers below n) merged in row order:
    (each entry's rank, flat by partition; each partition's start in that flat order; the
    rows in rank order)."""
    parts = len(part_firsts)
    # the partitions side by side, each closed by n (past every row); one flat array, as a
    # list of arrays costs reference counting on every read
    bases = np.zeros(parts + 1, dtype=np.int64)
    for t in range(parts):
        bases[t + 1] = bases[t] + part_firsts[t].shape[0] + 1
    flat = np.empty(bases[parts], dtype=np.int64)
    for t in range(parts):
        flat[bases[t]:bases[t + 1] - 1] = part_firsts[t]
        flat[bases[t + 1] - 1] = n
    total = bases[parts] - parts
    rank = np.empty(bases[parts], dtype=np.int64)
    rows = np.empty(total, dtype=np.int64)
    heads = bases[:parts].copy()
    for g in range(total):
        best = 0
        for t in range(1, parts):
            if flat[heads[t]] < flat[heads[best]]:
                best = t
        rows[g] = flat[heads[best]]
        rank[heads[best]] = g
        heads[best] += 1
    return rank, bases, rows


@numba.njit(cache=True, nogil=True)
def _partition_rows(offsets, words, data, hashes, part, parts, start, table, c_hash, c_start,
                    firsts, arena, n_arena, n_codes, codes):
    """As _factorize_rows, for the rows whose hash falls in one partition, hashes given, with
    a tagged slot table (see _grow_tagged): half the bytes of a (hash, info) pair per slot,
    so more of the table stays in cache (1e6 distinct strings, 2 threads: factorize's median
    about 15% faster). An entry's first word holds its code above its length.

    Row r gets code c * parts + part, c counting that partition's strings in first-seen
    order.
    """
    n = hashes.shape[0]
    mask = np.uint64(table.shape[0] - 1)
    limit = table.shape[0] // 2
    n_words = np.uint64(words.shape[0])
    n_bytes = data.shape[0]
    row_words = np.empty(8, dtype=np.uint64)
    batch_rows = np.empty(_BATCH_ROWS, dtype=np.int64)
    batch_hashes = np.empty(_BATCH_ROWS, dtype=np.uint64)
    for block in range(start, n, _BATCH_ROWS):
        kept = partition_batch(hashes, block, part, parts, batch_rows, batch_hashes)
        for q in range(kept):
            # prefetch the slot of the row 2 * _AHEAD ahead, and the arena entry (its first
            # and last word's lines) of the row _AHEAD ahead: the lookups' misses overlap
            if q + 2 * _AHEAD < kept:
                prefetch(table, batch_hashes[q + 2 * _AHEAD] & mask)
            if q + _AHEAD < kept:
                x = table[batch_hashes[q + _AHEAD] & mask]
                if x != _EMPTY_SLOT:
                    prefetch(arena, x & _LOW)
                    prefetch(arena, (x & _LOW) + np.uint64(_FIXED_WORDS))
            r = batch_rows[q]
            h = batch_hashes[q]
            s0 = np.int64(offsets[np.uint64(r)])
            s1 = np.int64(offsets[np.uint64(r + 1)])
            length = s1 - s0
            j = (length + 7) // 8
            if j > row_words.shape[0]:
                row_words = np.empty(j, dtype=np.uint64)
            fixed = 8 < length <= 8 * _FIXED_WORDS and s0 + 8 * _FIXED_WORDS <= n_bytes
            if fixed:
                for i in range(_FIXED_WORDS):  # a constant count: unrolled, no mispredicted exit
                    row_words[i] = fixed_word(data, s0, length, i)
            else:
                for i in range(j):
                    p = s0 + 8 * i
                    k = np.uint64(p >> 3)
                    if k + np.uint64(1) < n_words:
                        shift = np.uint64(8 * (p & 7))
                        w = (words[k] >> shift) | ((words[k + np.uint64(1)] << np.uint64(1))
                                                   << (np.uint64(63) - shift))
                    else:  # the tail of the buffer
                        w = np.uint64(0)
                        for b in range(min(8, s1 - p)):
                            w |= np.uint64(data[p + b]) << np.uint64(8 * b)
                    half = np.uint64(4 * min(8, s1 - p))
                    row_words[i] = w & (((np.uint64(1) << half) << half) - np.uint64(1))
            slot = h & mask
            a = 0
            while True:
                x = table[slot]
                if x == _EMPTY_SLOT:
                    break
                if (x ^ h) & _HIGH == 0:
                    a = np.int64(x & _LOW)
                    same = arena[np.uint64(a)] & _LOW == np.uint64(length)
                    i = 0
                    if same and fixed and a + 1 + _FIXED_WORDS <= arena.shape[0]:
                        diff = np.uint64(0)  # branch-free, words past the string masked out
                        for i in range(_FIXED_WORDS):
                            diff |= (arena[np.uint64(a + 1 + i)] ^ row_words[i]) * np.uint64(i < j)
                        same = diff == 0
                        i = j
                    while same and i < j:
                        same = arena[np.uint64(a + 1 + i)] == row_words[np.uint64(i)]
                        i += 1
                    if same:
                        break
                slot = (slot + np.uint64(1)) & mask
            if x == _EMPTY_SLOT:
                if n_codes == limit or n_arena + 1 + j > arena.shape[0]:
                    return r, n_codes, n_arena
                if length > 0xFFFFFFFF:
                    raise ValueError("factorize: a string passes 4 GiB")
                c = n_codes
                arena[n_arena] = (np.uint64(c) << np.uint64(32)) | np.uint64(length)
                arena[n_arena + 1:n_arena + 1 + j] = row_words[:j]
                c_hash[c] = h
                c_start[c] = n_arena
                firsts[c] = r
                table[slot] = (h & _HIGH) | np.uint64(n_arena)
                n_arena += 1 + j
                n_codes += 1
            else:
                c = np.int64(arena[np.uint64(a)] >> np.uint64(32))
            codes[np.uint64(r)] = c * parts + part
    return n, n_codes, n_arena


@numba.njit(cache=True, nogil=True)
def _factorize_partition(offsets, words, data, hashes, part, parts, table, c_hash, c_start,
                         firsts, arena, codes):
    """As factorize_range, for the rows of one hash partition, into empty tables sized for its
    expected share of the distinct strings (grown if that was too few); returns its first rows.
    """
    n = hashes.shape[0]
    r, n_codes, n_arena = 0, 0, 0
    while r < n:
        r, n_codes, n_arena = _partition_rows(offsets, words, data, hashes, part, parts, r,
                                              table, c_hash, c_start, firsts, arena, n_arena,
                                              n_codes, codes)
        doubled, c_hash, c_start, firsts, arena = _make_room(
            offsets, r, n, n_codes, n_arena, table.shape[0], c_hash, c_start, firsts, arena)
        if doubled:
            table = _grow_tagged(2 * table.shape[0], c_hash, c_start, n_codes)
    return firsts[:n_codes].copy()


@numba.njit(parallel=True, cache=True, nogil=True)
def _hash_parallel(offsets, words, data, hashes, sketches):
    """Every row's hash into hashes, by parallel row chunks, one sketch row per chunk."""
    n = offsets.shape[0] - 1
    threads = sketches.shape[0]
    chunk = (n + threads - 1) // threads
    for t in numba.prange(threads):
        _hash_rows(offsets, words, data, min(n, t * chunk), min(n, (t + 1) * chunk), hashes,
                   sketches[t])


@numba.njit(parallel=True, cache=True, nogil=True)
def _factorize_by_hash(offsets, words, data, hashes, table, c_hash, c_start, firsts, arena,
                       codes):
    """Int32 codes in first-seen order (into codes) and each code's first row, each thread
    owning a hash range of the hashed rows; each table argument holds one row per thread.

    Each thread codes the strings of its own hash partition (a 1/threads share of the
    distinct strings), the partitions' first rows are merged in row order, and every row's
    code is remapped to its rank.
    """
    n = offsets.shape[0] - 1
    threads = table.shape[0]
    chunk = (n + threads - 1) // threads
    part_firsts = [np.empty(0, dtype=np.int64) for _ in range(threads)]
    for t in numba.prange(threads):
        part_firsts[t] = _factorize_partition(offsets, words, data, hashes, t, threads,
                                              table[t], c_hash[t], c_start[t], firsts[t],
                                              arena[t], codes)
    flat_rank, bases, rows = merge_first_rows(part_firsts, n)
    longest = 0
    for t in range(threads):
        longest = max(longest, bases[t + 1] - bases[t] - 1)
    rank = np.empty(longest * threads, dtype=np.int32)  # by code: c * threads + partition
    for t in range(threads):
        for c in range(bases[t + 1] - bases[t] - 1):
            rank[c * threads + t] = flat_rank[bases[t] + c]
    for t in numba.prange(threads):
        for i in range(min(n, t * chunk), min(n, (t + 1) * chunk)):
            codes[i] = rank[codes[i]]
    return codes, rows


@numba.njit(parallel=True, cache=True, nogil=True)
def factorize_parallel(offsets, words, data, threads, codes):
    """Int32 codes in first-seen order (into codes) and the row of each code's first occurrence.

    Row chunks are factorised in parallel, each after the first _SAMPLE_ROWS rows (its
    seed, see factorize_range); the chunks' first rows, in chunk order, are then factorised
    once more to give global codes, and each chunk is remapped unless unchanged: when the
    seed held every string (100 labels, 1e8 rows, 2 threads), no chunk is (44 of 237 ms).
    """
    n = offsets.shape[0] - 1
    chunk = (n + threads - 1) // threads
    local_firsts = [np.empty(0, dtype=np.int64) for _ in range(threads)]
    for t in numba.prange(threads):
        lo = min(n, t * chunk)
        local_firsts[t] = factorize_range(offsets, words, data, lo, min(n, lo + chunk), codes,
                                          min(lo, _SAMPLE_ROWS))
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
                                    merged, 0)
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
def apply_remap(indices, remap, threads, out):
    """Int32 codes remap[indices[i]] for every row, into out."""
    n = indices.shape[0]
    chunk = (n + threads - 1) // threads
    for t in numba.prange(threads):
        for i in range(min(n, t * chunk), min(n, (t + 1) * chunk)):
            out[i] = remap[indices[i]]
    return out


def distinct_estimate(sketch: np.ndarray) -> float:
    """The HyperLogLog estimate of how many distinct hashes filled `sketch`'s registers,
    with linear counting while many registers are still empty (Flajolet et al., 2007)."""
    m = sketch.shape[0]
    raw = 0.7213 / (1 + 1.079 / m) * m * m / float(np.sum(np.ldexp(1.0, -sketch.astype(int))))
    empty = int(np.count_nonzero(sketch == 0))
    return m * math.log(m / empty) if raw <= 2.5 * m and empty else raw


def partition_share(distinct: float, parts: int) -> tuple[int, int]:
    """Each of `parts` hash partitions' expected share of about `distinct` strings (10% over),
    and the power-of-two slot count that keeps that share at most half full."""
    share = int(distinct * _SKETCH_SLACK / parts) + _START_SLOTS
    return share, 1 << (2 * share - 1).bit_length()


def _partition_tables(distinct: float, parts: int, mean_bytes: float) -> tuple:
    """Empty tables for `parts` hash partitions sharing about `distinct` strings, allocated by
    numpy (huge pages: the tables are read at random, and 4 KiB pages miss the TLB)."""
    share, slots = partition_share(distinct, parts)
    arena_words = int(share * (mean_bytes / 8 + 2))
    return (np.full((parts, slots), _EMPTY_SLOT, np.uint64),
            np.empty((parts, slots // 2), np.uint64), np.empty((parts, slots // 2), np.int64),
            np.empty((parts, slots // 2), np.int64), np.empty((parts, arena_words), np.uint64))


def many_distinct(offsets, words, data, threads: int) -> bool:
    """Whether the rows are many enough, with distinct strings dense enough in a sample of the
    first rows, for hashing every row then splitting by hash over threads (over a quarter
    of the sample distinct); else coding row chunks and merging them is faster."""
    n = offsets.shape[0] - 1
    if threads < 2 or n <= _SAMPLE_ROWS * threads:
        return False
    sample = np.empty(_SAMPLE_ROWS, dtype=np.int32)
    return 4 * factorize_range(offsets, words, data, 0, _SAMPLE_ROWS, sample, 0).shape[0] \
        > _SAMPLE_ROWS


def hash_strings(offsets, words, data, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's hash, and the HyperLogLog sketch of them (see distinct_estimate)."""
    hashes = np.empty(offsets.shape[0] - 1, dtype=np.uint64)
    sketches = np.zeros((threads, 1 << _SKETCH_BITS), dtype=np.uint8)
    _hash_parallel(offsets, words, data, hashes, sketches)
    return hashes, sketches.max(axis=0)


def factorize_strings(offsets, words, data, threads):
    """Int32 codes in first-seen order and each code's first row, by the faster parallel plan.

    Many distinct strings (many_distinct) are hashed first, then split by hash over threads
    (_factorize_by_hash) into tables sized from the hashes' distinct-count sketch; few are
    coded per row chunk and merged (factorize_parallel).
    """
    n = offsets.shape[0] - 1
    codes = np.empty(n, dtype=np.int32)
    if many_distinct(offsets, words, data, threads):
        hashes, sketch = hash_strings(offsets, words, data, threads)
        mean_bytes = (int(offsets[n]) - int(offsets[0])) / n
        tables = _partition_tables(distinct_estimate(sketch), threads, mean_bytes)
        return _factorize_by_hash(offsets, words, data, hashes, *tables, codes)
    return factorize_parallel(offsets, words, data, threads, codes)
