"""What loading a model imports, and in which order: the part of `%serve` start-up we control.

Each check runs in a fresh interpreter, since import order is a property of a whole process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from jupyter_serve.models import save_model

TRUSTED_TYPE_LISTS = """
import json, sys
import skops.io._trusted_types as trusted
print(json.dumps({name: sorted(value) for name, value in vars(trusted).items()
                  if name.endswith("_TYPE_NAMES")}, sort_keys=True))
"""


@pytest.fixture(scope="module")
def skops_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = ["win a free cruise now", "meeting moved to noon", "claim your prize", "lunch?"]
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(
        texts, ["spam", "ham", "spam", "ham"]
    )
    return save_model(
        model, tmp_path_factory.mktemp("models") / "spam", serialization_format="skops"
    )


def test_importing_the_models_package_loads_neither_pandas_nor_skops(
    product_python: Path,
) -> None:
    from conftest import run_python

    loaded = run_python(
        product_python,
        "import sys, jupyter_serve.models\n"
        "print(sorted(m for m in ('pandas', 'skops', 'sklearn') if m in sys.modules))",
    )

    assert loaded.strip() == "[]"


def test_a_skops_model_loads_scipy_special_before_pandas_and_predicts(
    product_python: Path, skops_model_dir: Path
) -> None:
    from conftest import run_python

    script = (
        "import json, sys\n"
        "from jupyter_serve.models import load_model\n"
        "model = load_model(sys.argv[1])\n"
        "order = list(sys.modules)\n"
        "print(json.dumps({'scipy': order.index('scipy.special'),\n"
        "                  'pandas': order.index('pandas'),\n"
        "                  'prediction': list(model.predict(['claim your free prize']))}))\n"
    )
    seen = json.loads(run_python(product_python, script, str(skops_model_dir)))

    # skops's first import scans every module loaded before scipy.special, once per ufunc.
    assert seen["scipy"] < seen["pandas"], "pandas was imported before the skops model loaded"
    assert seen["prediction"] == ["spam"]


def test_skops_trusts_the_same_types_whatever_was_imported_before_it(
    product_python: Path,
) -> None:
    from conftest import run_python

    ours = run_python(
        product_python,
        "from jupyter_serve.models._artifacts import _skops_io\n_skops_io()\n" + TRUSTED_TYPE_LISTS,
    )
    after_pandas_and_tornado = run_python(
        product_python, "import pandas, tornado.web, skops.io\n" + TRUSTED_TYPE_LISTS
    )

    trusted = json.loads(ours)
    assert trusted == json.loads(after_pandas_and_tornado)
    assert (
        "sklearn.linear_model._logistic.LogisticRegression"
        in trusted["SKLEARN_ESTIMATOR_TYPE_NAMES"]
    )
    assert len(trusted["SCIPY_UFUNC_TYPE_NAMES"]) > 100


def test_serving_from_the_embedded_registry_imports_no_mlflow_client_nor_environments(
    product_python: Path, skops_model_dir: Path
) -> None:
    from conftest import run_python

    from jupyter_serve.registry import register_model

    register_model(skops_model_dir, "spam", stage="Production")
    script = (
        "import sys\n"
        "from jupyter_serve._deployments import load_uri\n"
        "source = load_uri('models:/spam/Production')\n"
        "print(source.model.predict(['claim your free prize'])[0])\n"
        "print(sorted(m for m in ('jupyter_serve.registry._mlflow', 'jupyter_serve.environments')"
        " if m in sys.modules))\n"
    )
    prediction, unneeded = run_python(product_python, script).strip().splitlines()

    assert prediction == "spam"
    assert unneeded == "[]"
