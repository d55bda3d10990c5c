"""Content-Type rules of ``/invocations``, as MLflow 3.17.2 applies them.

The media type is matched exactly (case-sensitive, as MLflow does). Parameters are split on
``;`` and ``=`` the way MLflow splits them, so ``charset = utf-8`` (spaces around ``=``) is an
unknown parameter there and here. The checks run in MLflow's order: charset first, then
unknown parameters, then the media type.
"""

from __future__ import annotations

from functools import lru_cache

from jupyter_serve.protocol._errors import ScoringError, unsupported_media_type

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
SUPPORTED_MEDIA_TYPES = (CSV, JSON, PARQUET)

PROTOCOL_CHANGE_NOTE = (
    "The MLflow scoring protocol changed in MLflow 2.0: send the input under one of the keys "
    "'dataframe_split', 'dataframe_records', 'instances' or 'inputs' with Content-Type "
    "application/json (or a CSV/Parquet body), without a 'format' parameter."
)


def media_type_of(content_type: str | None) -> str:
    """The supported media type ``content_type`` names, or raise the 4xx MLflow would answer.

    Raises ``ScoringError``: 415 for another charset, an unknown parameter or an unsupported
    media type; 415 too for a missing header (MLflow answers 500 there, a bug we fix).
    Results are cached: clients send the same few header values over and over.
    """
    if content_type is None:
        raise _missing_content_type()
    return _media_type_of(content_type)


def _missing_content_type() -> ScoringError:
    return unsupported_media_type(
        "The request has no Content-Type header. Expected one of "
        f"{list(SUPPORTED_MEDIA_TYPES)}, e.g. 'Content-Type: application/json'."
    )


@lru_cache(maxsize=64)
def _media_type_of(content_type: str) -> str:
    parts = [part.strip() for part in content_type.split(";")]
    media_type = parts[0]
    parameters: dict[str, str] = {}
    for pair in parts[1:]:
        key, _, value = pair.partition("=")
        parameters[key] = value
    if parameters.get("charset", "utf-8").lower() != "utf-8":
        raise unsupported_media_type(
            f"The scoring server only supports UTF-8, got {content_type!r}. Send the body "
            "encoded as UTF-8 with 'charset=utf-8' or no charset."
        )
    unknown = sorted(set(parameters) - {"charset"})
    if unknown:
        raise unsupported_media_type(
            f"Unrecognized content type parameters: {', '.join(unknown)}. {PROTOCOL_CHANGE_NOTE}"
        )
    if media_type not in SUPPORTED_MEDIA_TYPES:
        raise unsupported_media_type(
            "This predictor only supports the following content types: "
            f"Types: {list(SUPPORTED_MEDIA_TYPES)}. Got {content_type!r}."
        )
    return media_type
