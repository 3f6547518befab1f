"""HPACK (RFC 7541): the header compression of HTTP/2. No I/O.

``Decoder`` reads a header block into ``(name, value)`` pairs of bytes. What
makes a block an error (``HpackError``, a connection error of type
``COMPRESSION_ERROR``): an index of 0 or past the tables, an integer or a
string running past the block, a table size update above the limit or after a
field, a bad Huffman coding, and a block whose fields add up to more than
``max_header_list_size`` (counted as SETTINGS_MAX_HEADER_LIST_SIZE counts
them: name, value and 32 per field), so that a few bytes that reference a big
table entry over and over cannot make megabytes.

``Encoder`` writes fields without Huffman coding (it costs more CPU than the
bytes it saves on a pod's network; netty turned it off for the same reason).
A field goes into the dynamic table when it is likely to repeat; fields whose
value changes on every message never do, where they would only evict the ones
that repeat, and credentials are sent never-indexed (§7.1.3), so that no later
hop indexes them either.
"""

from __future__ import annotations

from typing import Final

from librt.strings import BytesWriter

from pillion.h2.huffman import HuffmanError
from pillion.h2.huffman import decode as huffman_decode

__all__ = ["STATIC_TABLE", "Decoder", "Encoder", "HpackError"]

STATIC_TABLE: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
)
"""RFC 7541 Appendix A: index 1 is the first entry."""

_STATIC_LENGTH: Final = 61
_ENTRY_OVERHEAD: Final = 32  # bytes counted per entry, and per field of a header list
DEFAULT_TABLE_SIZE: Final = 4096
_MAX_INTEGER: Final = 1 << 31  # HPACK integers past this are refused (nothing here needs more)

_STATIC_FIELDS: Final[dict[tuple[bytes, bytes], int]] = {}
_STATIC_NAMES: Final[dict[bytes, int]] = {}
for _index, _field in enumerate(STATIC_TABLE, 1):
    _STATIC_FIELDS.setdefault(_field, _index)
    _STATIC_NAMES.setdefault(_field[0], _index)

_CHANGING: Final = frozenset({b"x-request-id", b"traceparent", b"content-length", b"date"})
_SENSITIVE: Final = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})
_INDEXED_MOST: Final = DEFAULT_TABLE_SIZE // 4  # a field larger than this is not indexed


class HpackError(ValueError):
    """A header block that cannot be decoded (a ``COMPRESSION_ERROR``)."""


class Decoder:
    """The decoding side of one connection: its dynamic table."""

    def __init__(
        self, max_table_size: int = DEFAULT_TABLE_SIZE, max_header_list_size: int = 65536
    ) -> None:
        self.max_table_size = max_table_size  # what SETTINGS_HEADER_TABLE_SIZE allows
        self.max_header_list_size = max_header_list_size
        self._table_size = max_table_size  # the encoder's choice, at most the setting
        self._entries: list[tuple[bytes, bytes]] = []  # newest last
        self._size = 0

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The fields of one complete header block."""
        fields: list[tuple[bytes, bytes]] = []
        end = len(block)
        at = 0
        total = 0
        limit = self.max_header_list_size
        while at < end:
            first = block[at]
            if first & 0x80:  # indexed field
                index, at = _integer(block, at, 7)
                field = self._field(index)
            elif first & 0x40:  # literal, added to the table
                index, at = _integer(block, at, 6)
                field, at = self._literal(block, at, index)
                self._add(field)
            elif first & 0x20:  # dynamic table size update
                if fields:
                    raise HpackError("a table size update after a field")
                size, at = _integer(block, at, 5)
                if size > self.max_table_size:
                    raise HpackError("a table size update above the limit")
                self._table_size = size
                self._evict(0)
                continue
            else:  # literal, not indexed (0000) or never indexed (0001)
                index, at = _integer(block, at, 4)
                field, at = self._literal(block, at, index)
            total += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if total > limit:
                raise HpackError("the header list is larger than the limit")
            fields.append(field)
        return fields

    def _field(self, index: int) -> tuple[bytes, bytes]:
        if index == 0:
            raise HpackError("index 0")
        if index <= _STATIC_LENGTH:
            return STATIC_TABLE[index - 1]
        position = len(self._entries) - (index - _STATIC_LENGTH)
        if position < 0:
            raise HpackError("an index past the dynamic table")
        return self._entries[position]

    def _literal(self, block: bytes, at: int, index: int) -> tuple[tuple[bytes, bytes], int]:
        if index:
            name = self._field(index)[0]
        else:
            name, at = _string(block, at)
        value, at = _string(block, at)
        return (name, value), at

    def _add(self, field: tuple[bytes, bytes]) -> None:
        size = len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
        if size > self._table_size:
            self._entries.clear()  # larger than the table: empties it (§4.4)
            self._size = 0
            return
        self._evict(size)
        self._entries.append(field)
        self._size += size

    def _evict(self, room: int) -> None:
        entries = self._entries
        dropped = 0
        while self._size + room > self._table_size and dropped < len(entries):
            name, value = entries[dropped]
            self._size -= len(name) + len(value) + _ENTRY_OVERHEAD
            dropped += 1
        if dropped:
            del entries[:dropped]


def _integer(block: bytes, at: int, prefix: int) -> tuple[int, int]:
    """The integer at ``at`` with a ``prefix``-bit prefix, and where it ends."""
    mask = (1 << prefix) - 1
    value = block[at] & mask
    at += 1
    if value < mask:
        return value, at
    shift = 0
    end = len(block)
    while True:
        if at >= end:
            raise HpackError("an integer runs past the block")
        byte = block[at]
        at += 1
        value += (byte & 0x7F) << shift
        if value > _MAX_INTEGER:
            raise HpackError("an integer too large")
        if not byte & 0x80:
            return value, at
        shift += 7


def _string(block: bytes, at: int) -> tuple[bytes, int]:
    if at >= len(block):
        raise HpackError("a string runs past the block")
    huffman = block[at] & 0x80
    length, at = _integer(block, at, 7)
    end = at + length
    if end > len(block):
        raise HpackError("a string runs past the block")
    raw = block[at:end]
    if huffman:
        try:
            return huffman_decode(raw), end
        except HuffmanError as exc:
            raise HpackError(str(exc)) from None
    return raw, end


def _put_integer(out: BytesWriter, value: int, prefix: int, flags: int) -> None:
    mask = (1 << prefix) - 1
    if value < mask:
        out.append(flags | value)
        return
    out.append(flags | mask)
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class Encoder:
    """The encoding side of one connection: its dynamic table, as the peer's
    decoder will hold it."""

    def __init__(self) -> None:
        self._table_size = DEFAULT_TABLE_SIZE
        self._fields: dict[tuple[bytes, bytes], int] = {}  # field -> its insertion number
        self._names: dict[bytes, int] = {}
        self._entries: list[tuple[bytes, bytes]] = []  # newest last
        self._first = 0  # insertion number of ``_entries[0]``
        self._size = 0
        self._smallest = -1  # a table size update is owed: the smallest size since the last

    def set_table_size(self, size: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE: the table is kept within it, at
        most 4096, and the next block tells the peer's decoder (the smallest size
        it had meanwhile first, so that it evicts what this side evicted)."""
        size = min(size, DEFAULT_TABLE_SIZE)
        if size == self._table_size:
            return
        self._table_size = size
        self._evict(0)
        self._smallest = size if self._smallest < 0 else min(self._smallest, size)

    def encode(self, fields: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> bytes:
        out = BytesWriter()
        if self._smallest >= 0:
            if self._smallest < self._table_size:
                _put_integer(out, self._smallest, 5, 0x20)
            _put_integer(out, self._table_size, 5, 0x20)
            self._smallest = -1
        for field in fields:
            name, value = field
            index = _STATIC_FIELDS.get(field, 0)
            if index:
                _put_integer(out, index, 7, 0x80)
                continue
            number = self._fields.get(field, -1)
            if number >= 0:
                _put_integer(out, self._index(number), 7, 0x80)
                continue
            name_index = _STATIC_NAMES.get(name, 0)
            if not name_index:
                number = self._names.get(name, -1)
                if number >= 0:
                    name_index = self._index(number)
            size = len(name) + len(value) + _ENTRY_OVERHEAD
            if name in _SENSITIVE:
                _put_integer(out, name_index, 4, 0x10)  # never indexed
            elif name in _CHANGING or size > _INDEXED_MOST or size > self._table_size:
                _put_integer(out, name_index, 4, 0x00)  # not indexed
            else:
                _put_integer(out, name_index, 6, 0x40)
                self._add(field, size)
            if not name_index:
                _put_integer(out, len(name), 7, 0)
                out.write(name)
            _put_integer(out, len(value), 7, 0)
            out.write(value)
        return out.getvalue()

    def _index(self, number: int) -> int:
        """The index of the entry inserted as ``number``th."""
        return _STATIC_LENGTH + self._first + len(self._entries) - number

    def _add(self, field: tuple[bytes, bytes], size: int) -> None:
        self._evict(size)
        number = self._first + len(self._entries)
        self._entries.append(field)
        self._size += size
        self._fields[field] = number
        self._names[field[0]] = number

    def _evict(self, room: int) -> None:
        entries = self._entries
        dropped = 0
        while self._size + room > self._table_size and dropped < len(entries):
            field = entries[dropped]
            number = self._first + dropped
            self._size -= len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if self._fields.get(field) == number:
                del self._fields[field]
            if self._names.get(field[0]) == number:
                del self._names[field[0]]
            dropped += 1
        if dropped:
            del entries[:dropped]
            self._first += dropped
