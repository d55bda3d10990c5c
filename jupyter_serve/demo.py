"""The demo: register the spam classifier and serve ``models:/spam/Production``.

``make demo`` registers it (``ensure_demo_model``) and opens JupyterLab on the quick start;
``make demo-serve`` runs ``python -m jupyter_serve.demo [--port PORT]``, serving it from the
shell. The model is trained on the generated email corpus and registered in the embedded
registry only when no version of ``spam`` is in Production yet, so running the demo again
serves the same model instead of piling up versions.
"""

from __future__ import annotations

import argparse
import sys

DEMO_URI = "models:/spam/Production"


def ensure_demo_model() -> str:
    """Register the demo spam classifier in Production unless one is there; returns the URI."""
    import pandas as pd

    from jupyter_serve.datasets import SAMPLE_SPAM_EMAIL, train_spam_classifier
    from jupyter_serve.errors import ModelNotFoundError
    from jupyter_serve.registry import register_model, resolve_model_uri

    try:
        resolved = resolve_model_uri(DEMO_URI)
    except ModelNotFoundError:
        example = pd.DataFrame({"text": [SAMPLE_SPAM_EMAIL]})
        version = register_model(
            train_spam_classifier(), "spam", stage="Production", input_example=example
        )
        print(f"Registered the demo spam classifier as spam version {version} (Production).")
    else:
        print(f"The demo spam classifier is already in Production (version {resolved.version}).")
    return DEMO_URI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyter_serve.demo", description=__doc__)
    parser.add_argument("--port", default="5000", help="port to serve on (default 5000)")
    options = parser.parse_args(argv)
    from jupyter_serve.cli import main as cli_main

    uri = ensure_demo_model()
    print("Try it from another terminal:")
    print(
        f"  curl -X POST http://127.0.0.1:{options.port}/invocations "
        "-H 'Content-Type: application/json' "
        """-d '{"dataframe_split": {"columns": ["text"], "data": [["You won a free cruise!"]]}}'"""
    )
    return cli_main(["models", "serve", "-m", uri, "-p", options.port])


if __name__ == "__main__":
    sys.exit(main())
