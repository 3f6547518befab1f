"""HPACK (``pillion.h2.hpack``, ``pillion.h2.huffman``) against RFC 7541's own examples and against
the ``hpack`` library as an independent implementation: what one encodes, the
other decodes to the same fields, over sequences of blocks sharing the table."""

from __future__ import annotations

import hpack
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable
from hypothesis import given, settings
from hypothesis import strategies as st

from pillion.h2 import huffman as h2huffman
from pillion.h2.hpack import STATIC_TABLE, Decoder, Encoder, HpackError

Fields = list[tuple[bytes, bytes]]
REFERENCE_HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)

names = st.sampled_from(
    [b":path", b":method", b"content-type", b"cookie", b"authorization", b"x-request-id",
     b"date", b"content-length", b"x-a", b"x-long-name-of-a-field", b"server", b"etag"]
) | st.binary(min_size=1, max_size=12)  # fmt: skip
values = st.sampled_from([b"", b"/", b"GET", b"200", b"text/plain", b"gzip, deflate"]) | st.binary(
    max_size=40
)
big_values = st.binary(min_size=900, max_size=5000)
field_lists = st.lists(st.tuples(names, values | big_values), max_size=10)


def hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


def test_the_static_table_is_rfc_7541s() -> None:
    assert tuple(HeaderTable.STATIC_TABLE) == STATIC_TABLE
    assert len(STATIC_TABLE) == 61


@given(st.binary(max_size=200))
def test_huffman_decodes_what_the_reference_codes(text: bytes) -> None:
    assert h2huffman.decode(REFERENCE_HUFFMAN.encode(text)) == text


def test_huffman_codes_are_rfc_7541s() -> None:
    assert [(code, length) for code, length in h2huffman.CODES] == list(
        zip(REQUEST_CODES, REQUEST_CODES_LENGTH, strict=True)
    )
    assert h2huffman.decode(hex_bytes("f1e3 c2e5 f23a 6ba0 ab90 f4ff")) == b"www.example.com"
    assert h2huffman.decode(hex_bytes("a8eb 1064 9cbf")) == b"no-cache"


@pytest.mark.parametrize(
    ("coded", "why"),
    [
        (b"\x1f\xff", "11 one-bits of padding (more than 7)"),
        (b"\x18", "padding that is not all one-bits"),
        (b"\xff\xff\xff\xff", "EOS inside the string"),
        (b"\xfe", "a code cut short (7 one-bits is padding, but 0xfe ends in a zero)"),
    ],
)
def test_bad_huffman_codings_are_refused(coded: bytes, why: str) -> None:
    with pytest.raises(h2huffman.HuffmanError):
        h2huffman.decode(coded)


def test_the_rfc_examples_of_requests_decode_with_huffman_and_the_table() -> None:
    # RFC 7541 C.4: three requests on one connection
    decoder = Decoder()
    assert decoder.decode(hex_bytes("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")) == [
        (b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
        (b":authority", b"www.example.com"),
    ]  # fmt: skip
    assert decoder.decode(hex_bytes("8286 84be 5886 a8eb 1064 9cbf")) == [
        (b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
        (b":authority", b"www.example.com"), (b"cache-control", b"no-cache"),
    ]  # fmt: skip
    third = "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"
    assert decoder.decode(hex_bytes(third)) == [
        (b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
        (b":authority", b"www.example.com"), (b"custom-key", b"custom-value"),
    ]  # fmt: skip


def test_the_rfc_examples_of_responses_evict_from_a_small_table() -> None:
    # RFC 7541 C.6: a 256-byte table, entries evicted as responses come
    decoder = Decoder(max_table_size=256)
    decoder.decode(hex_bytes("3fe1 01"))  # the size update first: 256
    first = decoder.decode(
        hex_bytes(
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6"
            "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"
        )
    )
    assert first[0] == (b":status", b"302")
    assert first[3] == (b"location", b"https://www.example.com")
    second = decoder.decode(hex_bytes("4883 640e ffc1 c0bf"))
    assert second[0] == (b":status", b"307")
    assert second[1:] == first[1:]


@settings(max_examples=150)
@given(st.lists(field_lists, min_size=1, max_size=6), st.booleans())
def test_what_the_reference_encodes_decodes_the_same(blocks: list[Fields], huffman: bool) -> None:
    reference = hpack.Encoder()
    decoder = Decoder(max_header_list_size=1 << 20)
    for fields in blocks:
        assert decoder.decode(reference.encode(fields, huffman=huffman)) == fields


@settings(max_examples=150)
@given(
    st.lists(st.tuples(field_lists, st.none() | st.sampled_from([0, 64, 256, 4096, 8192]))),
)
def test_what_this_encodes_the_reference_decodes_the_same(
    blocks: list[tuple[Fields, int | None]],
) -> None:
    encoder = Encoder()
    reference = hpack.Decoder()
    reference.max_header_list_size = 1 << 20
    for fields, table_size in blocks:
        if table_size is not None:  # the reference's SETTINGS_HEADER_TABLE_SIZE changed
            encoder.set_table_size(table_size)
            reference.max_allowed_table_size = min(table_size, 4096)
        decoded = reference.decode(encoder.encode(fields), raw=True)
        assert [tuple(field) for field in decoded] == fields


def test_fields_that_change_or_are_secret_never_enter_the_table() -> None:
    encoder = Encoder()
    fields = [(b"x-request-id", b"abc"), (b"authorization", b"Bearer s3cret"), (b"x-app", b"1")]
    first = encoder.encode(fields)
    second = encoder.encode(fields)
    assert b"abc" in second  # sent as a literal again
    assert b"s3cret" in second
    assert b"x-app" not in second  # indexed the second time
    assert len(second) < len(first)
    # never indexed (0001), name index 23 (15 + 8)
    assert first[len(b"\x00\x8cx-request-id\x03abc") :].startswith(b"\x1f\x08")


def test_a_table_size_update_goes_first_smallest_then_final() -> None:
    encoder = Encoder()
    reference = hpack.Decoder()
    reference.decode(encoder.encode([(b"x-a", b"1")]))
    encoder.set_table_size(0)
    encoder.set_table_size(100)
    block = encoder.encode([(b"x-a", b"1")])
    assert block[:3] == b"\x20\x3f\x45"  # 0, then 100 (31 + 69)
    reference.max_allowed_table_size = 100
    assert reference.decode(block, raw=True) == [(b"x-a", b"1")]


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (b"\x80", "index 0"),
        (b"\xbf\x20", "index 94 with an empty dynamic table"),
        (b"\xff\xff\xff\xff\xff\xff\x01", "an integer of more than 31 bits"),
        (b"\xff", "an integer cut short"),
        (b"\x40\x05ab", "a name cut short"),
        (b"\x00\x01a\x85abc", "a value cut short"),
        (b"\x3f\xe2\x1f", "a table size update above 4096"),
        (b"\x82\x20", "a table size update after a field"),
        (b"\x00\x01a\x81\xff", "a bad Huffman coding"),
    ],
)
def test_bad_blocks_are_compression_errors(block: bytes, why: str) -> None:
    with pytest.raises(HpackError):
        Decoder().decode(block)


def test_a_header_list_past_the_limit_is_refused_however_small_the_block() -> None:
    decoder = Decoder(max_header_list_size=16 * 1024)
    seed = hpack.Encoder().encode([(b"x-bomb", b"b" * 4000)])
    decoder.decode(seed)  # 4,038 bytes: within
    bomb = b"\xbe" * 5  # five references to that entry: five bytes, 20 KB decoded
    with pytest.raises(HpackError, match="larger than the limit"):
        decoder.decode(bomb)


def test_an_entry_larger_than_the_table_empties_it() -> None:
    decoder = Decoder()
    decoder.decode(hpack.Encoder().encode([(b"x-a", b"1")]))
    big = b"\x40\x03x-b" + b"\x7f\xe9\x1f" + b"v" * 4200  # literal, indexed: 4,235 bytes
    assert decoder.decode(big) == [(b"x-b", b"v" * 4200)]
    with pytest.raises(HpackError):
        decoder.decode(b"\xbe")  # nothing left in the table
