"""Request bodies as JSON: the one decoder of every route, and the limits it names.

Python's json module fails on two kinds of body a client can send that are no fault of the
server: a document nested deeper than the interpreter's recursion limit (RecursionError) and
an integer longer than the int-string conversion limit (a bare ValueError). Both are refused
here as `JsonLimitError`, a client fault, before any other work. A third trap decodes without
failing: a lone surrogate escape (``"\\ud800"``) becomes a str that no UTF-8 encoder accepts.
`holds_lone_surrogates` finds those; each protocol decides what to do with them.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any


class JsonLimitError(Exception):
    """A body that is JSON but beyond what this server reads; ``message`` names the limit
    and what to send instead. Not a ValueError, so handlers of syntax errors let it pass."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def decode_json(body: bytes) -> Any:
    """``json.loads(body)``, as MLflow's server calls it (UTF-8, -16 or -32; NaN and Infinity
    accepted; the last of duplicate keys wins).

    Raises json.JSONDecodeError or UnicodeDecodeError for a body that is not JSON, and
    `JsonLimitError` for one nested too deeply or holding too long an integer. Thread-safe.
    """
    try:
        return json.loads(body)
    except RecursionError:
        raise JsonLimitError(
            "The JSON body nests lists or objects deeper than this server reads (about "
            f"{sys.getrecursionlimit()} levels); send the data with less nesting."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError as error:  # the int-string conversion limit is the only other one
        digits = sys.get_int_max_str_digits()
        raise JsonLimitError(
            f"The JSON body holds an integer of more than {digits} digits, the most this "
            "server converts; send such a number as a float or a string."
            if "integer string conversion" in str(error)
            else f"The JSON body cannot be read: {error}."
        ) from None


# An escape is a backslash and what it escapes; a surrogate pair is one character, a lone
# surrogate escape is not. Scanning escapes left to right keeps "\\\\ud800" (an escaped
# backslash, then text) apart from "\\ud800".
_ESCAPE = re.compile(
    r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|(?P<lone>u[dD][89a-fA-F][0-9a-fA-F]{2})|.)",
    re.DOTALL,
)
_RAW_SURROGATE = re.compile("[\ud800-\udfff]")


def holds_lone_surrogates(body: bytes) -> bool:
    """Whether decoding ``body`` as JSON gives a string holding a surrogate code point: a
    lone ``\\ud800``-``\\udfff`` escape, or surrogate bytes (which json.loads lets through).

    Costs three substring searches of the body unless it holds a ``\\ud`` escape, a raw
    surrogate lead byte, or is not UTF-8. Never raises; a body that is not text says False
    (the decoder refuses it). Thread-safe.
    """
    if not (b"\\ud" in body or b"\\uD" in body or b"\xed" in body or b"\x00" in body[:4]):
        return False
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
    except UnicodeDecodeError:
        return False
    if _RAW_SURROGATE.search(text) is not None:
        return True
    return any(escape.group("lone") for escape in _ESCAPE.finditer(text))
