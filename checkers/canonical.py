"""The recorder's own line shape, parsed a block of lines at a time with numpy instead of one
JSON decode per line.

``harness.run.recorder`` writes every client op in one shape, its fields in one order and with
no whitespace::

    {"index":I,"time":I,"process":I,"type":"S","f":"S"[,"key":"S"][,"value":V][,"error":"S"]}

where I is a non-negative integer, V an integer, and S a string of printable ASCII with no
escape. ``parse`` finds the lines of exactly that shape in a block and returns their fields as
arrays (strings as codes into tables of their distinct values); every other line (the nemesis's,
a value that is a list, non-ASCII text, whitespace, a key that is a number, anything unusual)
is listed as *slow*, for the JSON decoder. A line is fast only when the decoder would read
it to the same values: integers of at most 18 digits with no leading zero (no overflow, no
``-0``), strings without a backslash, control character or byte past ASCII.

The block is looked at as overlapping little-endian 8-byte words (a uint64 view with a stride of
one byte): a literal such as ``,"process":`` is compared a word at a time, eight digits become a
number in a few word operations, and a string's bytes are packed into words to tell equal
strings apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .history import TYPES

MAX_DIGITS = 15  # digits read from two words with the byte after them; < 2^63
MAX_STR = 64  # bytes; a line with a longer string is left to the decoder
#: bytes readable after a block: a dropped line's cursor runs on by at most the shape's length
#: (about 450 bytes), so reads at any cursor stay inside the buffer and need no clamping
PAD = 1024
_HASH = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it loses no bits
_U = np.uint64
_ZEROS = _U(0x3030303030303030)  # "00000000"


def _eight_digits(x: np.ndarray) -> np.ndarray:
    """Eight ASCII digits in a little-endian word (the first, most significant, in its low
    byte) as their value: pairs, then fours, then all eight, a multiplication each."""
    v = x - _ZEROS
    v = v * _U(10) + (v >> _U(8))
    m = _U(0x000000FF000000FF)
    return (
        (v & m) * _U(100 + (1000000 << 32)) + ((v >> _U(16)) & m) * _U(1 + (10000 << 32))
    ) >> _U(32)


def _first_digits(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The value of the first ``n`` (0 to 8) digits of each word: shifted up, with zeros in
    front."""
    n = n.astype(np.uint64)
    return _eight_digits((x << (_U(8) * (_U(8) - n))) | (_ZEROS >> (_U(8) * n)))


_ONES = _U(0x0101010101010101)
_LOW7 = _U(0x7F7F7F7F7F7F7F7F)
_HI = _U(0x8080808080808080)


def _eq(x: np.ndarray, c: int) -> np.ndarray:
    """The high bit of each byte of ``x`` that equals ``c``."""
    y = x ^ (_ONES * _U(c))
    return ~(((y & _LOW7) + _LOW7) | y) & _HI


def _lt(x: np.ndarray, c: int) -> np.ndarray:
    """The high bit of each byte of ``x`` below ``c`` (at most 0x80)."""
    return ~(((x & _LOW7) + _ONES * _U(0x80 - c)) | x) & _HI


def _not_digit(x: np.ndarray) -> np.ndarray:
    """The high bit of each byte of ``x`` that is not an ASCII digit: XOR with "0" leaves a
    digit's byte below 10 and every other byte at 10 or above."""
    t = x ^ _ZEROS
    return (((t & _LOW7) + _ONES * _U(0x80 - 10)) | t) & _HI


def _low_bytes(k: int) -> np.uint64:
    """A word's mask of its first (lowest) ``k`` bytes, 1 to 8."""
    return _U((1 << (8 * k)) - 1)


_TYPE_TOKENS = tuple(b'"%s"' % t.encode() for t in TYPES)
_BYTE_OF = _U(0x0001020304050607)  # byte k from the top is 7 - k


def _first(flags: np.ndarray) -> np.ndarray:
    """The first (lowest) byte with its high bit set in each word, 8 for none: the lowest set
    bit alone, moved to bit 8k, times ``_BYTE_OF`` brings k into the top byte."""
    k = (((flags & (~flags + _U(1))) >> _U(7)) * _BYTE_OF) >> _U(56)
    return np.where(flags == 0, _U(8), k).view(np.int64)


def _factorize(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's code, distinct values numbered in the order first met, and where each is
    first met (ascending): one sort, then the groups' first positions."""
    o = np.argsort(h)
    hs = h[o]
    new = np.empty(len(h), dtype=bool)
    new[0] = True
    new[1:] = hs[1:] != hs[:-1]
    starts = np.flatnonzero(new)
    first = np.minimum.reduceat(o, starts)  # of each group (sorted by value)
    by_first = np.argsort(first)
    rank = np.empty(len(starts), dtype=np.int64)
    rank[by_first] = np.arange(len(starts))
    codes = np.empty(len(h), dtype=np.int64)
    codes[o] = rank[np.cumsum(new) - 1]
    return codes, first[by_first]


class Collision(Exception):
    """Two different strings packed to one hash (never seen; the block is then decoded)."""


@dataclass
class Strings:
    """One string field of the fast lines: each line's code into ``table`` (distinct values, in
    the order first met), and the block line where each value is first met."""

    codes: np.ndarray
    table: list[str]
    first: np.ndarray


@dataclass
class Parsed:
    lines: int  # lines in the block
    fast: np.ndarray  # block line numbers of the fast lines, ascending
    slow: np.ndarray  # the others, ascending
    start: np.ndarray  # each line's first byte in the block, and the byte after its last
    end: np.ndarray
    index: np.ndarray  # the fields of the fast lines, in their order
    time: np.ndarray
    process: np.ndarray
    type: np.ndarray  # int8 codes: positions in ``TYPES``
    f: Strings
    key: Strings | None  # None: no fast line has a key
    has_key: np.ndarray
    has_value: np.ndarray
    value: np.ndarray  # 0 where a line has none
    error: Strings | None  # codes -1 where a line has none
    has_error: np.ndarray


class _Scan:
    """Cursors, one a line, moved through the block field by field; ``ok`` drops a line at the
    first byte that is not the shape's. Only the line ends are found by a pass over the whole
    block; every other read is of a few words at each cursor."""

    def __init__(self, buf: bytes, size: int) -> None:
        if len(buf) < size + PAD:
            raise ValueError("a block needs PAD readable bytes after it")
        self.size = size
        self.buf = buf
        self.a = np.frombuffer(buf, dtype=np.uint8)
        self.w = np.ndarray(  # the little-endian word starting at each byte
            shape=(len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,)
        )
        nl = np.flatnonzero(self.a[: self.size] == 10)
        self.start = np.concatenate(([0], nl + 1)).astype(np.int64)
        self.end = np.concatenate((nl, [self.size])).astype(np.int64)
        self.ok = np.ones(len(self.start), dtype=bool)
        self.pos = self.start.copy()

    def at(self, lit: bytes) -> np.ndarray:
        """Whether each line has ``lit`` at its cursor. A literal has no newline and no zero
        byte, so it never matches across a line's end or the block's."""
        m: np.ndarray | None = None
        p = self.pos
        for i in range(0, len(lit), 8):
            part = lit[i : i + 8]
            eq = self.w[p + i] & _low_bytes(len(part)) == _U(int.from_bytes(part, "little"))
            m = eq if m is None else m & eq
        assert m is not None
        return m

    def expect(self, lit: bytes) -> None:
        self.ok &= self.at(lit)
        self.pos += len(lit)

    def optional(self, lit: bytes) -> np.ndarray:
        """Lines with ``lit`` at the cursor step over it; which did."""
        m = self.at(lit) & self.ok
        self.pos += m * len(lit)
        return m

    def digits(self, where: np.ndarray | None = None) -> np.ndarray:
        """A non-negative integer at the cursor (lines in ``where``, or all): its value."""
        p = self.pos
        w0, w1 = self.w[p], self.w[p + 8]
        n = _first(_not_digit(w0))
        two = n == 8
        n = np.where(two, 8 + _first(_not_digit(w1)), n)
        good = (n >= 1) & (n <= MAX_DIGITS) & (((w0 & _U(0xFF)) != 48) | (n == 1))
        if where is not None:
            good |= ~where
            n = np.where(where, n, 0)
        self.ok &= good
        n = np.where(self.ok, n, 0)
        self.pos = p + n
        val = _first_digits(w0, np.minimum(n, 8))
        if two.any():  # past 8 digits: the first n - 8 and then the 8 ending at n
            hi = n - 8
            u = (_U(8) * hi.clip(0)).astype(np.uint64)
            last8 = (w0 >> u) | (w1 << (_U(64) - u))
            val = np.where(
                hi > 0, _first_digits(w0, hi.clip(0)) * _U(10**8) + _eight_digits(last8), val
            )
        return val.astype(np.int64)

    def string(self, where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A string's bytes from the cursor to the next quote (lines in ``where``, or all):
        their starts and lengths; the cursor ends on the closing quote. A string must be
        printable ASCII without a backslash, and at most ``MAX_STR`` bytes."""
        p = self.pos
        n = np.zeros(len(p), dtype=np.int64)
        good = np.zeros(len(p), dtype=bool)
        todo = None if where is None else np.flatnonzero(where & self.ok)
        for k in range(MAX_STR // 8 + 1):  # a word at a time, for the lines still in it
            if todo is None:  # all lines, the first word
                todo = np.arange(len(p))
                x = self.w[p]
            else:
                x = self.w[p[todo] + 8 * k]
            quote = _eq(x, 0x22)
            stop = quote | _eq(x, 0x5C) | _lt(x, 0x20) | (x & _HI)  # the quote, or a bad byte
            at = _first(stop)
            found = at < 8
            done = todo[found]
            n[done] = 8 * k + at[found]
            good[done] = (quote[found] >> (_U(8) * at[found].astype(np.uint64) + _U(7))) & _U(
                1
            ) == 1
            todo = todo[~found]
            if not len(todo):
                break
        good &= n <= MAX_STR  # a newline stops it as a bad byte: it never runs past its line
        if where is not None:
            good |= ~where
        self.ok &= good
        self.pos = p + n
        return p, n

    def token(self, tokens: tuple[bytes, ...]) -> np.ndarray:
        """Which of ``tokens`` (of at most 8 bytes each) is at each cursor, as its position in
        ``tokens``; a line with none is dropped. The cursor steps over it."""
        x = self.w[self.pos]
        which = np.full(len(x), -1, dtype=np.int64)
        for i, t in enumerate(tokens):
            which[(x & _low_bytes(len(t))) == _U(int.from_bytes(t, "little"))] = i
        found = which >= 0
        self.ok &= found
        lens = np.array([len(t) for t in tokens] + [0], dtype=np.int64)
        self.pos += lens[which]  # -1: the 0 at the end
        return which

    def table(self, s: np.ndarray, n: np.ndarray, lines: np.ndarray) -> Strings:
        """The strings at ``s`` of lengths ``n`` (one per line of ``lines``) as codes into a
        table of their distinct values, first met first."""
        if not len(s):
            return Strings(np.zeros(0, dtype=np.int64), [], lines[:0])
        h = n.astype(np.uint64)
        words = []
        for k in range(-(-int(n.max(initial=0)) // 8)):
            left = np.clip(n - 8 * k, 0, 8).astype(np.uint64)
            mask = np.where(left == 8, np.uint64(2**64 - 1), (np.uint64(1) << (left * 8)) - 1)
            wk = self.w[s + 8 * k] & mask
            words.append(wk)
            h = h * _HASH + wk
        codes, first = _factorize(h)
        back = first[codes]
        if np.any(n[back] != n) or any(np.any(wk[back] != wk) for wk in words):
            raise Collision  # two strings, one hash: the line-by-line decoder takes the block
        starts, lens = s[first].tolist(), n[first].tolist()
        table = [self.buf[b : b + m].decode("ascii") for b, m in zip(starts, lens, strict=True)]
        return Strings(codes, table, lines[first])


def parse(buf: bytes, size: int | None = None) -> Parsed:
    """The lines of ``buf``'s first ``size`` bytes (separated by newlines, none at the end) in
    the recorder's shape, with their fields; the others' line numbers in ``slow``. Past ``size``
    come a newline or nothing, and then ``PAD`` bytes to read (without ``size``: ``buf`` is the
    block, copied with them)."""
    if size is None:
        size, buf = len(buf), buf + bytes(PAD)
    sc = _Scan(buf, size)
    sc.expect(b'{"index":')
    index = sc.digits()
    sc.expect(b',"time":')
    time = sc.digits()
    sc.expect(b',"process":')
    process = sc.digits()
    sc.expect(b',"type":')
    type_ = sc.token(_TYPE_TOKENS)
    sc.expect(b',"f":"')
    f = sc.string()
    sc.expect(b'"')
    has_key = sc.optional(b',"key":"')
    key = sc.string(has_key)
    sc.pos += has_key  # its closing quote
    has_value = sc.optional(b',"value":')
    neg = has_value & (sc.a[sc.pos] == ord("-"))
    sc.pos += neg
    value = sc.digits(has_value)
    sc.ok &= ~neg | (value != 0)  # "-0": left to the decoder
    value = np.where(neg, -value, value)
    has_error = sc.optional(b',"error":"')
    error = sc.string(has_error)
    sc.pos += has_error
    sc.expect(b"}")
    sc.ok &= sc.pos == sc.end
    fast = np.flatnonzero(sc.ok)
    slow = np.flatnonzero(~sc.ok)
    hk, he = has_key[fast], has_error[fast]
    return Parsed(
        lines=len(sc.start),
        fast=fast,
        slow=slow,
        start=sc.start,
        end=sc.end,
        index=index[fast],
        time=time[fast],
        process=process[fast],
        type=type_[fast].astype(np.int8),
        f=sc.table(f[0][fast], f[1][fast], fast),
        key=sc.table(key[0][fast][hk], key[1][fast][hk], fast[hk]) if hk.any() else None,
        has_key=hk,
        has_value=has_value[fast],
        value=value[fast],
        error=sc.table(error[0][fast][he], error[1][fast][he], fast[he]) if he.any() else None,
        has_error=he,
    )
