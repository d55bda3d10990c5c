"""Building and sending the try-it panel's request: a real HTTP call to the real endpoint.

The panel never calls the model directly for its prediction: what it shows is what any client
would get from the server, errors included.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from jupyter_serve._deployments._sample_request import SECRET_HEADER

SEND_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class FormField:
    """One input column of a tabular model, as the panel shows it."""

    column: str
    type_name: str


class FormValueError(ValueError):
    """A value typed in the panel cannot be sent as its column's type."""


def convert_value(field: FormField, raw: Any) -> Any:
    """``raw`` (what the user typed) as the JSON value the column's type expects."""
    kind = field.type_name.lower()
    if isinstance(raw, bool) or "bool" in kind:
        return bool(raw)
    text = str(raw).strip()
    if "int" in kind or "long" in kind:
        try:
            return int(text)
        except ValueError:
            raise FormValueError(
                f"Column '{field.column}' expects a whole number ({field.type_name}); "
                f"got {text!r}. Type digits only, e.g. 3."
            ) from None
    if "float" in kind or "double" in kind:
        try:
            return float(text)
        except ValueError:
            raise FormValueError(
                f"Column '{field.column}' expects a number ({field.type_name}); got {text!r}. "
                "Type a number, e.g. 0.5."
            ) from None
    return text


def split_body(columns: list[str], row: list[Any]) -> dict[str, Any]:
    """A one-row ``dataframe_split`` body."""
    return {"dataframe_split": {"columns": columns, "data": [row]}}


@dataclass(frozen=True)
class Exchange:
    """One request sent to a deployment and what came back."""

    status: int | None  # None when no HTTP answer came at all
    response_text: str
    latency_ms: float
    problem: str | None = None  # why there was no HTTP answer

    @property
    def ok(self) -> bool:
        return self.status == 200

    def response_json(self) -> Any:
        try:
            return json.loads(self.response_text)
        except ValueError:
            return None


def send_invocation(url: str, body: str, *, secret: str | None = None) -> Exchange:
    """POST ``body`` to ``url``/invocations and return what came back; never raises.

    Blocks the calling thread (the server answers from its own thread, so calling from the
    kernel's main thread cannot deadlock).
    """
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    request = urllib.request.Request(
        f"{url.rstrip('/')}/invocations", data=body.encode("utf-8"), headers=headers, method="POST"
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS) as answer:
            text = answer.read().decode("utf-8", errors="replace")
            status = answer.status
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", errors="replace")
        status = error.code
    except (OSError, urllib.error.URLError) as error:
        elapsed = (time.perf_counter() - started) * 1000
        reason = getattr(error, "reason", error)
        return Exchange(None, "", elapsed, problem=f"no answer from {url}: {reason}")
    return Exchange(status, text, (time.perf_counter() - started) * 1000)
