"""gzip that gives the same bytes on every machine, for the EC2 user data.

EC2 takes at most 16 KiB of user data and cloud-init accepts it gzipped. zlib's output differs
between implementations (zlib, zlib-ng, Apple's), and Pulumi replaces the instance when the bytes of
its user data change, so a teammate's `pulumi up` from another machine must produce the same bytes.
This is a small DEFLATE encoder (RFC 1951: LZ77 with one-step lazy matching, then one block with
Huffman codes built for its own symbols) whose output depends on nothing but its input; any gzip
reader decodes it. It compresses the user data about as well as zlib's level 9.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterable, Sequence

WINDOW = 32768
MIN_MATCH, MAX_MATCH = 3, 258
MAX_CHAIN = 64  # candidates examined per position: a fixed bound keeps the output reproducible
END_OF_BLOCK = 256
MAX_CODE_BITS = 15  # literal/length and distance codes
MAX_CODE_LENGTH_BITS = 7  # the code that transmits the other two codes' lengths

_LENGTH_BASES = (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
                 115, 131, 163, 195, 227, 258)
_LENGTH_EXTRA = (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0)
_DIST_BASES = (1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
               2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577)
_DIST_EXTRA = (0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13)
# RFC 1951 3.2.7: the order in which the code length code's own lengths are sent.
_CODE_LENGTH_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)

Token = tuple[int, int]  # (literal byte, 0) or (match length, distance)


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


def _longest_match(data: bytes, position: int, chains: dict[bytes, list[int]]) -> Token:
    limit = min(MAX_MATCH, len(data) - position)
    if limit < MIN_MATCH:
        return 0, 0
    best_length, best_distance = 0, 0
    for start in reversed(chains.get(data[position:position + MIN_MATCH], [])[-MAX_CHAIN:]):
        if position - start > WINDOW:
            break
        if best_length and data[start + best_length] != data[position + best_length]:
            continue  # cannot beat the best match so far
        length = MIN_MATCH
        while length < limit and data[start + length] == data[position + length]:
            length += 1
        if length > best_length:
            best_length, best_distance = length, position - start
            if length == limit:
                break
    return (best_length, best_distance) if best_length >= MIN_MATCH else (0, 0)


def _tokens(data: bytes) -> list[Token]:
    """LZ77 with one-step lazy matching: a match is deferred when the next byte starts a longer one."""
    chains: dict[bytes, list[int]] = {}
    indexed = 0  # every position below this one is in `chains`

    def index_up_to(end: int) -> None:
        nonlocal indexed
        for at in range(indexed, min(end, len(data) - MIN_MATCH + 1)):
            chains.setdefault(data[at:at + MIN_MATCH], []).append(at)
        indexed = max(indexed, end)

    tokens: list[Token] = []
    position = 0
    while position < len(data):
        index_up_to(position)
        length, distance = _longest_match(data, position, chains)
        if length:
            index_up_to(position + 1)
            next_length, _ = _longest_match(data, position + 1, chains)
            if next_length > length:
                tokens.append((data[position], 0))
                position += 1
                continue
            tokens.append((length, distance))
            position += length
        else:
            tokens.append((data[position], 0))
            position += 1
    return tokens


def _length_symbol(length: int) -> int:
    return max(i for i, base in enumerate(_LENGTH_BASES) if base <= length)


def _distance_symbol(distance: int) -> int:
    return max(i for i, base in enumerate(_DIST_BASES) if base <= distance)


def code_lengths(frequencies: Sequence[int], max_bits: int) -> list[int]:
    """Optimal length-limited Huffman code lengths (package-merge), ties broken by symbol number.

    Fewer than two used symbols still get a complete code of two 1-bit codes, which every inflater
    accepts (a one-code set is allowed by RFC 1951 but not by every decoder)."""
    used = [symbol for symbol, frequency in enumerate(frequencies) if frequency]
    for filler in range(len(frequencies)):
        if len(used) >= 2:
            break
        if filler not in used:
            used.append(filler)
    leaves = sorted((frequencies[symbol], symbol) for symbol in used)
    lengths = [0] * len(frequencies)
    items: list[tuple[int, tuple[int, ...]]] = [(weight, (symbol,)) for weight, symbol in leaves]
    leaf_items = list(items)
    for _ in range(max_bits - 1):
        packages = [(items[i][0] + items[i + 1][0], items[i][1] + items[i + 1][1])
                    for i in range(0, len(items) - 1, 2)]
        items = _merge(leaf_items, packages)
    for _, symbols in items[:2 * len(leaf_items) - 2]:
        for symbol in symbols:
            lengths[symbol] += 1
    return lengths


def _merge(leaves: list[tuple[int, tuple[int, ...]]],
           packages: list[tuple[int, tuple[int, ...]]]) -> list[tuple[int, tuple[int, ...]]]:
    merged: list[tuple[int, tuple[int, ...]]] = []
    i = j = 0
    while i < len(leaves) or j < len(packages):
        if j == len(packages) or (i < len(leaves) and leaves[i][0] <= packages[j][0]):
            merged.append(leaves[i])
            i += 1
        else:
            merged.append(packages[j])
            j += 1
    return merged


def canonical_codes(lengths: Sequence[int]) -> list[int]:
    """RFC 1951 3.2.2: the codes that the lengths alone define."""
    counts = [0] * (max(lengths, default=0) + 1)
    for length in lengths:
        if length:
            counts[length] += 1
    next_code, code = [0] * len(counts), 0
    for bits in range(1, len(counts)):
        code = (code + counts[bits - 1]) << 1 if bits > 1 else 0
        next_code[bits] = code
    codes = [0] * len(lengths)
    for symbol, length in enumerate(lengths):
        if length:
            codes[symbol] = next_code[length]
            next_code[length] += 1
    return codes


def _run_length(lengths: Sequence[int]) -> list[Token]:
    """The code lengths as code length symbols (0-15 literal, 16 repeat, 17/18 zero runs) and extras."""
    symbols: list[Token] = []
    i = 0
    while i < len(lengths):
        run = 1
        while i + run < len(lengths) and lengths[i + run] == lengths[i]:
            run += 1
        value, left = lengths[i], run
        if value == 0:
            while left >= 11:
                take = min(left, 138)
                symbols.append((18, take - 11))
                left -= take
            if left >= 3:
                symbols.append((17, left - 3))
                left = 0
        else:
            symbols.append((value, 0))
            left -= 1
            while left >= 3:
                take = min(left, 6)
                symbols.append((16, take - 3))
                left -= take
        symbols.extend((value, 0) for _ in range(left))
        i += run
    return symbols


_RUN_EXTRA_BITS = {16: 2, 17: 3, 18: 7}


def _trimmed(lengths: list[int], minimum: int) -> list[int]:
    end = len(lengths)
    while end > minimum and lengths[end - 1] == 0:
        end -= 1
    return lengths[:end]


def _frequencies(values: Iterable[int], size: int) -> list[int]:
    counts = [0] * size
    for value in values:
        counts[value] += 1
    return counts


def deflate(data: bytes) -> bytes:
    """One final DEFLATE block with dynamic Huffman codes."""
    tokens = _tokens(data)
    literal_symbols = [value if distance == 0 else 257 + _length_symbol(value) for value, distance in tokens]
    distance_symbols = [_distance_symbol(distance) for _, distance in tokens if distance]
    literal_lengths = _trimmed(code_lengths(_frequencies([*literal_symbols, END_OF_BLOCK], 286), MAX_CODE_BITS), 257)
    distance_lengths = _trimmed(code_lengths(_frequencies(distance_symbols, 30), MAX_CODE_BITS), 1)
    literal_codes, distance_codes = canonical_codes(literal_lengths), canonical_codes(distance_lengths)

    runs = _run_length(literal_lengths + distance_lengths)
    run_lengths = code_lengths(_frequencies((symbol for symbol, _ in runs), 19), MAX_CODE_LENGTH_BITS)
    run_codes = canonical_codes(run_lengths)
    sent_run_lengths = _trimmed([run_lengths[symbol] for symbol in _CODE_LENGTH_ORDER], 4)

    bits = _Bits()
    bits.write(1, 1)  # BFINAL
    bits.write(2, 2)  # BTYPE 10: dynamic Huffman codes
    bits.write(len(literal_lengths) - 257, 5)
    bits.write(len(distance_lengths) - 1, 5)
    bits.write(len(sent_run_lengths) - 4, 4)
    for length in sent_run_lengths:
        bits.write(length, 3)
    for symbol, extra in runs:
        bits.code(run_codes[symbol], run_lengths[symbol])
        if symbol in _RUN_EXTRA_BITS:
            bits.write(extra, _RUN_EXTRA_BITS[symbol])
    for (value, distance), symbol in zip(tokens, literal_symbols, strict=True):
        bits.code(literal_codes[symbol], literal_lengths[symbol])
        if distance:
            index = symbol - 257
            bits.write(value - _LENGTH_BASES[index], _LENGTH_EXTRA[index])
            index = _distance_symbol(distance)
            bits.code(distance_codes[index], distance_lengths[index])
            bits.write(distance - _DIST_BASES[index], _DIST_EXTRA[index])
    bits.code(literal_codes[END_OF_BLOCK], literal_lengths[END_OF_BLOCK])
    return bits.finish()


@functools.lru_cache(maxsize=16)  # a preview renders the same document more than once
def gzip_bytes(data: bytes) -> bytes:
    """A gzip member (RFC 1952) with no name and mtime 0: the same input gives the same bytes."""
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\xff"
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + deflate(data) + trailer
