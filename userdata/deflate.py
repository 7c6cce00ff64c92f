"""gzip that gives the same bytes on every machine, for the EC2 user data.

EC2 takes at most 16 KiB of user data and cloud-init accepts it gzipped. zlib's output differs
between implementations (zlib, zlib-ng, Apple's), and Pulumi replaces the instance when the bytes of
its user data change, so a teammate's `pulumi up` from another machine must produce the same bytes.
This is a small DEFLATE encoder (RFC 1951: greedy LZ77, fixed Huffman codes) whose output depends on
nothing but its input; any gzip reader decodes it.
"""

from __future__ import annotations

import struct
import zlib

WINDOW = 32768
MIN_MATCH, MAX_MATCH = 3, 258
MAX_CHAIN = 64  # candidates examined per position: a fixed bound keeps the output reproducible

_LENGTH_BASES = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
                 115, 131, 163, 195, 227, 258)
_LENGTH_EXTRA = (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0)
_DIST_BASES = (1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
               2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577)
_DIST_EXTRA = (0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13)


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def write(self, value: int, width: int) -> None:
        """Append `width` bits of `value`, least significant first."""
        self.acc |= value << self.count
        self.count += width
        while self.count >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.count -= 8

    def code(self, code: int, width: int) -> None:
        """Append a Huffman code, which DEFLATE stores most significant bit first."""
        self.write(int(f"{code:0{width}b}"[::-1], 2), width)

    def finish(self) -> bytes:
        if self.count:
            self.out.append(self.acc & 0xFF)
        return bytes(self.out)


def _symbol(bits: _Bits, symbol: int) -> None:
    if symbol < 144:
        bits.code(0x30 + symbol, 8)
    elif symbol < 256:
        bits.code(0x190 + symbol - 144, 9)
    elif symbol < 280:
        bits.code(symbol - 256, 7)
    else:
        bits.code(0xC0 + symbol - 280, 8)


def _match(bits: _Bits, length: int, distance: int) -> None:
    index = max(i for i, base in enumerate(_LENGTH_BASES) if base <= length)
    _symbol(bits, 257 + index)
    bits.write(length - _LENGTH_BASES[index], _LENGTH_EXTRA[index])
    index = max(i for i, base in enumerate(_DIST_BASES) if base <= distance)
    bits.code(index, 5)
    bits.write(distance - _DIST_BASES[index], _DIST_EXTRA[index])


def deflate(data: bytes) -> bytes:
    """One final DEFLATE block with fixed Huffman codes."""
    bits = _Bits()
    bits.write(1, 1)  # BFINAL
    bits.write(1, 2)  # BTYPE 01: fixed Huffman codes
    chains: dict[bytes, list[int]] = {}
    position, size = 0, len(data)
    while position < size:
        best_length, best_distance = 0, 0
        key = data[position:position + MIN_MATCH]
        candidates = chains.get(key, []) if len(key) == MIN_MATCH else []
        limit = min(MAX_MATCH, size - position)
        for start in reversed(candidates[-MAX_CHAIN:]):
            if position - start > WINDOW:
                break
            length = MIN_MATCH
            while length < limit and data[start + length] == data[position + length]:
                length += 1
            if length > best_length:
                best_length, best_distance = length, position - start
                if length == limit:
                    break
        step = best_length if best_length >= MIN_MATCH else 1
        for offset in range(step):
            at = position + offset
            if at + MIN_MATCH <= size:
                chains.setdefault(data[at:at + MIN_MATCH], []).append(at)
        if best_length >= MIN_MATCH:
            _match(bits, best_length, best_distance)
        else:
            _symbol(bits, data[position])
        position += step
    _symbol(bits, 256)
    return bits.finish()


def gzip_bytes(data: bytes) -> bytes:
    """A gzip member (RFC 1952) with no name and mtime 0: the same input gives the same bytes."""
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\xff"
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + deflate(data) + trailer
