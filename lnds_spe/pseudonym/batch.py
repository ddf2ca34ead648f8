"""HMAC-SHA256 pseudonyms over a whole batch in one compiled loop (numba), no Python per identifier.

HMAC(K, m) = H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)): the states after the two pad blocks are computed
once per key, so each identifier costs the compressions of its own bytes plus one. The digest, read
as a big-endian integer, is reduced into the alphabet by taking its `length` lowest base-radix
digits (the same string as `formats.digest_pseudonym`: x mod radix**length written in `length`
symbols). `hmac_pseudonyms` gives exactly what the per-identifier HMAC gives.
"""

from __future__ import annotations

import numba
import numpy as np

_M32 = np.uint64(0xFFFFFFFF)
_K = np.array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
], dtype=np.uint64)
_IV = np.array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19], dtype=np.uint64)
_BLOCK = 64
_LANES = 8


@numba.njit(cache=True, nogil=True, inline="always")
def _rotr(x, n):
    return ((x >> np.uint64(n)) | (x << np.uint64(32 - n))) & _M32


@numba.njit(cache=True, nogil=True)
def _compress(state, blocks, w, v):
    """SHA-256 compression of blocks[l] (64 bytes) into state[:, l] for every lane l at once.

    The loops over lanes are innermost so the compiler runs them as SIMD (eight messages in step).
    """
    lanes = state.shape[1]
    for t in range(16):
        for lane in range(lanes):
            w[t, lane] = ((np.uint64(blocks[lane, 4 * t]) << np.uint64(24))
                          | (np.uint64(blocks[lane, 4 * t + 1]) << np.uint64(16))
                          | (np.uint64(blocks[lane, 4 * t + 2]) << np.uint64(8))
                          | np.uint64(blocks[lane, 4 * t + 3]))
    for t in range(16, 64):
        for lane in range(lanes):
            x, y = w[t - 15, lane], w[t - 2, lane]
            s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> np.uint64(3))
            s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> np.uint64(10))
            w[t, lane] = (w[t - 16, lane] + s0 + w[t - 7, lane] + s1) & _M32
    v[:] = state
    for t in range(64):
        k = _K[t]
        for lane in range(lanes):
            a, b, c, d = v[0, lane], v[1, lane], v[2, lane], v[3, lane]
            e, f, g, h = v[4, lane], v[5, lane], v[6, lane], v[7, lane]
            t1 = (h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & _M32 & g))
                  + k + w[t, lane]) & _M32
            t2 = ((_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) & _M32
            v[7, lane], v[6, lane], v[5, lane], v[4, lane] = g, f, e, (d + t1) & _M32
            v[3, lane], v[2, lane], v[1, lane], v[0, lane] = c, b, a, (t1 + t2) & _M32
    for j in range(8):
        for lane in range(lanes):
            state[j, lane] = (state[j, lane] + v[j, lane]) & _M32


@numba.njit(cache=True, nogil=True)
def _pad_state(pad):
    state = _IV.copy().reshape(8, 1)
    _compress(state, pad.reshape(1, _BLOCK), np.empty((64, 1), dtype=np.uint64),
              np.empty((8, 1), dtype=np.uint64))
    return state[:, 0].copy()


@numba.njit(cache=True, nogil=True)
def _digits(state, lane, symbols, length, chunk, per_chunk, out, i):
    """out[i] = the `length` lowest base-len(symbols) digits of the 256-bit state[:, lane]."""
    radix = np.uint64(symbols.shape[0])
    pos = length
    while pos > 0:
        rem = np.uint64(0)
        for j in range(8):
            cur = (rem << np.uint64(32)) | state[j, lane]
            state[j, lane] = cur // chunk
            rem = cur % chunk
        for _ in range(min(per_chunk, pos)):
            pos -= 1
            out[i, pos] = symbols[rem % radix]
            rem //= radix


@numba.njit(cache=True, nogil=True)
def _hmac_digits(data, starts, inner0, outer0, symbols, length, chunk, per_chunk, out):
    """out[i] = the `length` lowest base-len(symbols) digits of HMAC(data[starts[i]:starts[i+1]])."""
    n = starts.shape[0] - 1
    most = 0
    for i in range(n):
        most = max(most, starts[i + 1] - starts[i])
    depth = (most + 9 + _BLOCK - 1) // _BLOCK
    padded = np.zeros((_LANES, depth * _BLOCK), dtype=np.uint8)
    blocks = np.empty((_LANES, _BLOCK), dtype=np.uint8)
    w = np.empty((64, _LANES), dtype=np.uint64)
    v = np.empty((8, _LANES), dtype=np.uint64)
    state = np.empty((8, _LANES), dtype=np.uint64)
    final = np.empty((8, _LANES), dtype=np.uint64)
    counts = np.empty(_LANES, dtype=np.int64)
    for first in range(0, n, _LANES):
        deepest = 1
        for lane in range(_LANES):
            i = min(first + lane, n - 1)  # a short last group repeats its last message
            size = starts[i + 1] - starts[i]
            counts[lane] = (size + 9 + _BLOCK - 1) // _BLOCK
            deepest = max(deepest, counts[lane])
            end = counts[lane] * _BLOCK
            row = padded[lane]
            row[:size] = data[starts[i]:starts[i + 1]]
            row[size] = 0x80
            row[size + 1:end] = 0
            bits = (size + _BLOCK) * 8
            for j in range(8):
                row[end - 1 - j] = (bits >> (8 * j)) & 0xFF
            state[:, lane] = inner0
        for k in range(deepest):
            blocks[:, :] = padded[:, k * _BLOCK:(k + 1) * _BLOCK]
            _compress(state, blocks, w, v)
            for lane in range(_LANES):
                if counts[lane] == k + 1:
                    final[:, lane] = state[:, lane]
        blocks[:, :] = 0
        for lane in range(_LANES):
            for j in range(8):
                for b in range(4):
                    blocks[lane, 4 * j + b] = (final[j, lane] >> np.uint64(24 - 8 * b)) & np.uint64(0xFF)
            blocks[lane, 32] = 0x80
            blocks[lane, 62] = 0x03  # (64 + 32) * 8 = 768 bits
            state[:, lane] = outer0
        _compress(state, blocks, w, v)
        for lane in range(min(_LANES, n - first)):
            _digits(state, lane, symbols, length, chunk, per_chunk, out, first + lane)


def _pads(key: bytes) -> tuple[np.ndarray, np.ndarray]:
    padded = np.frombuffer(key.ljust(_BLOCK, b"\x00"), dtype=np.uint8)
    return _pad_state(padded ^ np.uint8(0x36)), _pad_state(padded ^ np.uint8(0x5C))


class HmacDigits:
    """HMAC-SHA256 of many messages under one key (at most 64 bytes), written in an alphabet."""

    def __init__(self, key: bytes, alphabet: str, length: int):
        if len(key) > _BLOCK:
            raise ValueError("HMAC keys longer than 64 bytes are hashed first; pass 32 bytes")
        self._inner, self._outer = _pads(key)
        self._symbols = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
        self.length = length
        radix = len(alphabet)
        self._per_chunk = 1  # digits per long division: the most with radix ** n <= 2 ** 32
        while radix ** (self._per_chunk + 1) <= 2**32:
            self._per_chunk += 1
        self._chunk = np.uint64(radix**self._per_chunk)

    def __call__(self, texts: list[str]) -> list[str]:
        """The pseudonym of every text (UTF-8 encoded), in order."""
        joined = "".join(texts)
        if joined.isascii():
            sizes = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
            data = joined.encode("ascii")
        else:
            encoded = [t.encode() for t in texts]
            sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(texts))
            data = b"".join(encoded)
        starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        out = np.full((len(texts), self.length + 1), ord("\n"), dtype=np.uint8)  # a line per pseudonym
        _hmac_digits(np.frombuffer(data, dtype=np.uint8), starts, self._inner, self._outer,
                     self._symbols, self.length, self._chunk, self._per_chunk, out)
        return out.tobytes().decode("ascii").split()
