"""The server's fast paths (plain columns, merged calls) answer exactly what the general path
answers: hundreds of generated bodies, sent over HTTP and to `invoke`, must get the same status
and the same JSON. The model reports the dtype and value of every cell it was given, so a
difference in how a body became a DataFrame shows."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import requests

from jupyter_serve.models import ColSpec, DataType, ModelSignature, Schema, from_object
from jupyter_serve.protocol import invoke
from jupyter_serve.server import ScoringServer, ServerOptions

COLUMNS = ["a", "b", "t"]
VALUES: list[Any] = [
    0,
    -7,
    2**53 + 1,
    2**63,
    1.5,
    -0.25,
    1e300,
    "x",
    "",
    "é",
    True,
    None,
    [1, 2],
    {"k": 1},
]


SIGNATURE_LIKE = {"a": 2.5, "b": 3, "t": "spam"}


class CellReporter:
    """Predicts, per row, the dtype and repr of each cell: what the model was really given."""

    row_wise = True

    def predict(self, frame: pd.DataFrame) -> list[str]:
        return [
            "|".join(f"{column}:{frame[column].dtype}:{value!r}" for column, value in row.items())
            for _, row in frame.iterrows()
        ]


def _random_body(generator: random.Random) -> dict[str, Any]:
    width = generator.randint(1, 3)
    columns = generator.sample(COLUMNS, width)
    # Mostly one type per column (the plain cases), often the signature's, sometimes anything.
    kinds = [
        SIGNATURE_LIKE[column] if generator.random() < 0.5 else generator.choice(VALUES)
        for column in columns
    ]
    rows = [
        [kind if generator.random() < 0.8 else generator.choice(VALUES) for kind in kinds]
        for _ in range(generator.randint(1, 4))
    ]
    if generator.random() < 0.5:
        return {"dataframe_split": {"columns": columns, "data": rows}}
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    if generator.random() < 0.2:
        records[-1] = dict(reversed(list(records[-1].items())))
    return {"dataframe_records": records}


BODIES = [json.dumps(_random_body(random.Random(seed))).encode() for seed in range(300)]


@pytest.fixture(
    scope="module",
    params=["without a signature", "with a signature"],
)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    signature = None
    if request.param == "with a signature":
        signature = ModelSignature(
            inputs=Schema(
                [
                    ColSpec(DataType.double, "a"),
                    ColSpec(DataType.long, "b"),
                    ColSpec(DataType.string, "t"),
                ]
            )
        )
    model = from_object(CellReporter(), signature=signature)
    server = ScoringServer(model, ServerOptions(port=0), model_uri="test:/cells")
    server.start()
    try:
        yield model, server.url
    finally:
        server.stop()


def test_the_server_answers_every_body_as_the_general_path_does(served: tuple[Any, str]) -> None:
    model, url = served
    with requests.Session() as session:
        for body in BODIES:
            general = invoke(model, body, "application/json")
            answered = session.post(
                url + "/invocations",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            assert answered.status_code == general.status, body
            assert answered.json() == json.loads(general.body), body


def test_the_bodies_cover_both_paths(served: tuple[Any, str]) -> None:
    from jupyter_serve.protocol import PlainColumns, parse_invocation

    model, _ = served
    kept = 0
    for body in BODIES:
        try:
            data = parse_invocation(body, "application/json", model, keep_plain_columns=True).data
        except Exception:
            continue
        kept += isinstance(data, PlainColumns)
    assert 30 <= kept <= len(BODIES) - 30, kept
