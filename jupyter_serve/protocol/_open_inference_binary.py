"""The binary tensor data extension of the Open Inference Protocol, as Triton defines it.

This module reads binary requests; ``_open_inference_outputs`` writes binary answers.
A binary body is a JSON inference header of ``Inference-Header-Content-Length`` bytes
followed by raw tensors, one after another in the order of the header's tensors that carry
``parameters.binary_data_size``. Numbers are little-endian arrays (BOOL one byte each); a
BYTES element is a 4-byte little-endian length and then its bytes. Every size is checked
exactly: a client's mistake is a 400 naming what did not add up.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from jupyter_serve.protocol._open_inference import OpenInferenceError
from jupyter_serve.protocol._open_inference_outputs import BINARY_DTYPES, BINARY_HEADER

_LENGTH = struct.Struct("<I")


def _bad(message: str) -> OpenInferenceError:
    return OpenInferenceError(400, message)


def split_binary_body(body: bytes, header_length: str) -> tuple[bytes, memoryview]:
    """The JSON header and the raw tensor bytes of a body sent with
    ``Inference-Header-Content-Length: header_length``. Raises OpenInferenceError 400 when
    the length is no whole number between 1 and the body's size."""
    text = header_length.strip()
    # isascii: str.isdigit also holds for digits int() refuses, such as "²".
    if not (text.isascii() and text.isdigit() and len(text) <= 20 and 0 < int(text) <= len(body)):
        raise _bad(
            f"{BINARY_HEADER} is {header_length[:40]!r}, but it must be the size in bytes of the "
            f"JSON inference header at the start of the body (1 to {len(body)} here); send "
            "the header's exact byte length."
        )
    size = int(text)
    return body[:size], memoryview(body)[size:]


class BinaryTensorReader:
    """Hands out the raw bytes after the JSON header, tensor by tensor, in order. Not
    thread-safe: one reader per request."""

    def __init__(self, raw: memoryview) -> None:
        self._raw = raw
        self._offset = 0

    def read(self, name: str, size: Any, datatype: str, shape: list[int]) -> np.ndarray[Any, Any]:
        """The next ``size`` bytes as input ``name``'s array of ``shape``. Raises
        OpenInferenceError 400 when the size is not a whole number, overruns the body, or
        does not hold exactly ``shape`` elements of ``datatype``."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _bad(
                f"input {name!r} has binary_data_size {size!r}; expected the non-negative "
                "number of bytes its raw data takes in the body."
            )
        left = len(self._raw) - self._offset
        if size > left:
            raise _bad(
                f"input {name!r} has binary_data_size {size}, but only {left} bytes of "
                f"binary data are left in the body; check {BINARY_HEADER} and every "
                "binary_data_size."
            )
        chunk = self._raw[self._offset : self._offset + size]
        self._offset += size
        count = math.prod(shape)
        if datatype == "BYTES":
            return _bytes_elements(chunk, name, count).reshape(shape)
        dtype = BINARY_DTYPES[datatype]
        if size != count * dtype.itemsize:
            raise _bad(
                f"input {name!r} is {datatype} of shape {shape}, which takes "
                f"{count * dtype.itemsize} bytes, but its binary_data_size is {size}; send "
                "the raw little-endian array of exactly that shape."
            )
        if datatype == "BOOL":  # any non-zero byte is true, as in C; numpy would keep it
            flags: np.ndarray[Any, Any] = np.frombuffer(chunk, dtype=np.uint8) != 0
            return flags.reshape(shape)
        # A copy in native byte order: the model may keep or write to its input.
        array = np.frombuffer(chunk, dtype=dtype).astype(dtype.newbyteorder("="), copy=True)
        return array.reshape(shape)

    def check_consumed(self) -> None:
        """Raises OpenInferenceError 400 when bytes are left that no input claimed."""
        left = len(self._raw) - self._offset
        if left:
            raise _bad(
                f"the body holds {left} bytes of binary data after the last input's "
                f"binary_data_size; check {BINARY_HEADER} and every binary_data_size."
            )


def _bytes_elements(chunk: memoryview, name: str, count: int) -> np.ndarray[Any, Any]:
    elements: list[str] = []
    offset = 0
    while offset < len(chunk):
        if offset + _LENGTH.size > len(chunk):
            raise _bad(
                f"input {name!r} (BYTES) ends inside an element's 4-byte length; each "
                "element is a 4-byte little-endian length followed by that many bytes."
            )
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += _LENGTH.size
        if offset + length > len(chunk):
            raise _bad(
                f"input {name!r} (BYTES) has an element of {length} bytes that overruns its "
                "binary_data_size; each element is a 4-byte little-endian length followed "
                "by that many bytes."
            )
        try:
            elements.append(bytes(chunk[offset : offset + length]).decode("utf-8"))
        except UnicodeDecodeError:
            raise _bad(
                f"input {name!r} (BYTES) element {len(elements)} is not UTF-8 text; this "
                "server hands BYTES to models as text, so send UTF-8 encoded strings."
            ) from None
        offset += length
    if len(elements) != count:
        raise _bad(
            f"input {name!r} (BYTES) holds {len(elements)} elements in its binary data but "
            f"its shape says {count}; send as many elements as the shape says."
        )
    return np.array(elements, dtype=object)
