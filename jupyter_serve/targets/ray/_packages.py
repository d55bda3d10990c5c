"""What travels to the cluster: our package and the model directory, as content-addressed zips.

Ray fetches a runtime environment's ``gcs://_ray_pkg_<hash>.zip`` packages from its own store,
filled over the dashboard (``PUT /api/packages/gcs/...``). A zip here is deterministic (sorted
names, fixed timestamps), so the same files give the same URI and are uploaded once.

- our package goes in ``py_modules``: the zip holds ``jupyter_serve/...`` at its top, and Ray
  puts the unpacked directory on the replica's ``sys.path``;
- the model directory is the ``working_dir``: its files at the zip's top, unpacked as the
  replica's current directory.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import jupyter_serve

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
# Never needed by a replica: compiled files, the prebuilt JupyterLab extension.
_SKIPPED_DIRS = frozenset({"__pycache__", "labextension", ".ipynb_checkpoints"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Package:
    """A zip ready to upload, named by its content."""

    uri: str
    content: bytes


def zip_directory(directory: Path, *, include_parent: bool) -> Package:
    """Zip ``directory`` (its name as the top folder when ``include_parent``)."""
    root = directory.resolve()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if any(part in _SKIPPED_DIRS for part in relative.parts):
                continue
            if not path.is_file() or path.name.endswith(_SKIPPED_SUFFIXES):
                continue
            name = (Path(root.name) / relative if include_parent else relative).as_posix()
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    content = buffer.getvalue()
    digest = hashlib.sha1(content, usedforsecurity=False).hexdigest()
    return Package(f"gcs://_ray_pkg_{digest}.zip", content)


def our_package() -> Package:
    """This installation of jupyter-serve, as a ``py_modules`` package."""
    return zip_directory(Path(jupyter_serve.__file__).parent, include_parent=True)


def model_package(model_dir: Path) -> Package:
    """A model directory, as a ``working_dir`` package."""
    return zip_directory(model_dir, include_parent=False)
