"""The tutorials' own rules, checked without running them (`make nbtest` runs them with nbval).

nbval skips a cell's comparison only for an exact ``# NBVAL_IGNORE_OUTPUT`` line, and compares
the committed outputs with fresh ones: a notebook that keeps an error output, shares the
user's registry, or leaves a deployment running would teach the wrong thing or fail elsewhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
NBVAL_MARKERS = {
    "NBVAL_IGNORE_OUTPUT",
    "NBVAL_CHECK_OUTPUT",
    "NBVAL_RAISES_EXCEPTION",
    "NBVAL_SKIP",
}


def _code_cells(path: Path) -> list[dict[str, Any]]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def _source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def test_the_four_tutorials_are_there_in_reading_order() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01-quickstart.ipynb",
        "02-registry.ipynb",
        "03-mlflow-interop.ipynb",
        "04-production.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_ran_and_none_kept_an_error(path: Path) -> None:
    for number, cell in enumerate(_code_cells(path), start=1):
        assert cell["execution_count"] is not None, f"code cell {number} of {path.name} never ran"
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        assert not errors, f"code cell {number} of {path.name} saved an error: {errors[0]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_first_cell_gives_the_notebook_its_own_registry(path: Path) -> None:
    first = _source(_code_cells(path)[0])
    assert 'os.environ["JUPYTER_SERVE_REGISTRY"]' in first
    assert "tempfile.mkdtemp" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_last_cell_stops_every_deployment_and_shows_none_left(path: Path) -> None:
    last = _code_cells(path)[-1]
    assert "%unserve" in _source(last)
    shown = [o.get("data", {}).get("text/plain", "") for o in last["outputs"]]
    plain = "".join(text if isinstance(text, str) else "".join(text) for text in shown)
    assert "No deployments in this kernel" in plain


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_markers_are_spelled_as_nbval_reads_them(path: Path) -> None:
    for cell in _code_cells(path):
        for line in _source(cell).splitlines():
            comment = line.strip().lstrip("#").strip()
            if line.strip().startswith("#") and comment.startswith("NBVAL"):
                assert comment in NBVAL_MARKERS, f"{path.name}: nbval ignores {line.strip()!r}"


def test_every_sanitize_pattern_compiles() -> None:
    text = (NOTEBOOKS_DIR / "sanitize.cfg").read_text(encoding="utf-8")
    pairs = re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE)
    assert len(pairs) == text.count("\nregex: ") + text.startswith("regex: ")
    for pattern, replacement in pairs:
        re.sub(pattern, replacement, "http://127.0.0.1:8888 took 12.5 ms")
