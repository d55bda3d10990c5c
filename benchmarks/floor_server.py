"""jupyter-serve serving a model that does no work: what the server itself costs per request.

Usage: ``python -m benchmarks.floor_server PORT``. Same server, same protocol path and batching
as ``jupyter-serve models serve`` (a string column ``text``, one-row ``dataframe_split``
requests), but the model answers "ham" without looking: the gap between this and the bare
echo is jupyter-serve's own cost, the gap between this and the real model is the model's.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd

from jupyter_serve.models import from_object
from jupyter_serve.server import ScoringServer, ServerOptions


class ConstantSpamFilter:
    """Says "ham" to every row."""

    row_wise = True  # each answer depends on its own row (trivially): requests merge

    def predict(self, rows: Any) -> Any:
        return np.full(len(rows), "ham", dtype=object)


def main(port: int) -> None:
    """Serve `ConstantSpamFilter` on 127.0.0.1:``port`` until SIGINT/SIGTERM."""
    model = from_object(ConstantSpamFilter(), input_example=pd.DataFrame({"text": ["hello"]}))
    ScoringServer(model, ServerOptions(port=port), model_uri="floor").serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
