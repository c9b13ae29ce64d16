"""An ONNX file's ``metadata_props``, read and rewritten at the protobuf wire level: no onnx, no protobuf package.

An ONNX file is one serialized ``ModelProto``; its field 14, ``metadata_props``, is a repeated
``StringStringEntryProto`` (``key`` is field 1, ``value`` field 2). :func:`read_props` walks the top-level fields
and seeks past every other one, so the graph and its weights are never read. :func:`rewrite_props` copies every
other field's bytes as they are and puts the new entries where ``onnx.save`` puts them (after the graph, before
any field numbered above 14): the graph is byte for byte what it was. A file that is not a ModelProto (cut short,
or not protobuf at all) raises :class:`PropsError`; the caller decides what that means.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

METADATA_PROPS = 14  # ModelProto.metadata_props
_KEY, _VALUE = 1, 2  # StringStringEntryProto.key, .value
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5  # the wire types ONNX uses (groups, 3 and 4, it does not)
MAX_ENTRY = 16 << 20  # an entry this large is not metadata; it is skipped unread


class PropsError(ValueError):
    """The bytes are not a serialized ModelProto (cut short, a wire type ONNX does not use, a bad varint)."""


def _varint_from(read: Callable[[int], bytes]) -> int | None:
    """A varint read one byte at a time; None at a clean end of input (before its first byte)."""
    value = shift = 0
    while True:
        byte = read(1)
        if not byte:
            if shift == 0:
                return None
            raise PropsError("cut short inside a varint")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise PropsError("a varint longer than 10 bytes")


def _varint_at(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``pos``."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise PropsError("cut short inside a varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise PropsError("a varint longer than 10 bytes")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _length_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LENGTH) + _encode_varint(len(payload)) + payload


def encode_entry(key: str, value: str) -> bytes:
    """One ``metadata_props`` entry as the bytes of ModelProto field 14."""
    entry = _length_field(_KEY, key.encode("utf-8")) + _length_field(_VALUE, value.encode("utf-8"))
    return _length_field(METADATA_PROPS, entry)


def decode_entry(payload: bytes | memoryview) -> tuple[str, str]:
    """(key, value) of a StringStringEntryProto; bytes that are not UTF-8 are replaced (U+FFFD), never raised."""
    found: dict[int, bytes | memoryview] = {_KEY: b"", _VALUE: b""}
    pos = 0
    while pos < len(payload):
        start = pos
        tag, pos = _varint_at(payload, pos)
        pos = _skip_at(payload, pos, tag & 7)
        if tag & 7 == _LENGTH and tag >> 3 in found:
            found[tag >> 3] = _payload(payload, start, pos)
    return bytes(found[_KEY]).decode("utf-8", "replace"), bytes(found[_VALUE]).decode("utf-8", "replace")


def _skip_at(data: bytes | memoryview, pos: int, wire: int) -> int:
    """The position after a field's payload of wire type ``wire`` starting at ``pos``."""
    if wire == _VARINT:
        return _varint_at(data, pos)[1]
    if wire in (_FIXED64, _FIXED32):
        end = pos + (8 if wire == _FIXED64 else 4)
    elif wire == _LENGTH:
        size, pos = _varint_at(data, pos)
        end = pos + size
    else:
        raise PropsError(f"wire type {wire}, which ONNX does not use")
    if end > len(data):
        raise PropsError("cut short inside a field")
    return end


def _payload(data: bytes | memoryview, start: int, end: int) -> bytes | memoryview:
    """The payload of the length-delimited field spanning ``start:end`` (past its tag and length)."""
    return data[_varint_at(data, _varint_at(data, start)[1])[1]:end]


def fields(data: bytes | memoryview) -> list[tuple[int, int, int, int]]:
    """The top-level fields of a serialized ModelProto: ``(number, wire type, start, end)``, in file order."""
    spans = []
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint_at(data, pos)
        if tag >> 3 == 0:
            raise PropsError("field number 0")
        pos = _skip_at(data, pos, tag & 7)
        spans.append((tag >> 3, tag & 7, start, pos))
    return spans


def props_from_bytes(data: bytes | memoryview) -> dict[str, str]:
    """``metadata_props`` of a serialized ModelProto, in file order (a repeated key: the last one)."""
    view = memoryview(data)
    props = {}
    for number, wire, start, end in fields(view):
        if number == METADATA_PROPS and wire == _LENGTH:
            key, value = decode_entry(_payload(view, start, end))
            props[key] = value
    return props


def read_props(path: str | os.PathLike) -> dict[str, str]:
    """``metadata_props`` of the ONNX file at ``path``, reading only the top-level headers and the entries
    themselves (entries over :data:`MAX_ENTRY` are skipped). Raises :class:`PropsError` or ``OSError``."""
    with open(path, "rb") as f:
        return _props_from_stream(f, os.fstat(f.fileno()).st_size)


def _props_from_stream(f: BinaryIO, size: int) -> dict[str, str]:
    props = {}
    while (tag := _varint_from(f.read)) is not None:
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise PropsError("field number 0")
        if wire == _VARINT:
            if _varint_from(f.read) is None:
                raise PropsError("cut short inside a field")
            continue
        if wire == _LENGTH:
            length = _varint_from(f.read)
            if length is None:
                raise PropsError("cut short inside a field")
        elif wire in (_FIXED64, _FIXED32):
            length = 8 if wire == _FIXED64 else 4
        else:
            raise PropsError(f"wire type {wire}, which ONNX does not use")
        if f.tell() + length > size:
            raise PropsError("cut short inside a field")
        if number == METADATA_PROPS and wire == _LENGTH and length <= MAX_ENTRY:
            key, value = decode_entry(f.read(length))
            props[key] = value
        else:
            f.seek(length, os.SEEK_CUR)
    return props


def rewrite_props(data: bytes, props: dict[str, str], owned: Callable[[str], bool]) -> bytes:
    """``data`` (a serialized ModelProto) with every ``metadata_props`` entry whose key is ``owned`` dropped and
    ``props`` added; every other field's bytes are copied unchanged and in order. The new entries go before the
    first field numbered above 14 (where ``onnx.save`` writes them), else at the end."""
    view = memoryview(data)
    new = b"".join(encode_entry(key, value) for key, value in props.items())
    out: list[bytes | memoryview] = []
    placed = False
    for number, wire, start, end in fields(view):
        if number > METADATA_PROPS and not placed:
            out.append(new)
            placed = True
        if number == METADATA_PROPS and wire == _LENGTH:
            key, _ = decode_entry(_payload(view, start, end))
            if owned(key):
                continue
        out.append(view[start:end])
    if not placed:
        out.append(new)
    return b"".join(out)


__all__ = ["MAX_ENTRY", "METADATA_PROPS", "PropsError", "decode_entry", "encode_entry", "fields", "props_from_bytes",
           "read_props", "rewrite_props"]
