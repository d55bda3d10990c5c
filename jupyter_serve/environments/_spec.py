"""What an environment for a model must hold, and the cache key naming it.

Read from the model directory as MLflow lays it out: ``python_env.yaml`` (the Python version,
build dependencies, and ``-r requirements.txt``), else ``requirements.txt`` alone with this
interpreter's version. Added to it: what our worker process imports to serve (our own runtime
dependencies, minus the notebook-only ones), as lower bounds only, so one resolver call must
satisfy the model's pins and ours together: the model's versions are never replaced; an
incompatibility fails the build with the resolver's reason.

``mlflow`` lines are left out unless ``install_mlflow``: our workers never import MLflow, and
it is the heaviest requirement of every MLflow model.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from jupyter_serve.errors import InvalidModelError

DEFAULT_MLFLOW_VERSION = "3.17.2"
# Our dependencies a worker never imports (they serve the notebook and the Jupyter server).
_NOTEBOOK_ONLY = {"ipython", "ipywidgets", "jupyter-server", "jupyter-core"}
_MLFLOW_NAMES = {"mlflow", "mlflow-skinny"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class EnvironmentSpec:
    """Everything an environment manager needs to build a model's environment.

    ``key`` is a hash of the model's environment files, the manager, ``install_mlflow`` and the
    jupyter-serve installation linked into the environment: equal keys mean interchangeable
    environments.
    """

    env_manager: str
    python_version: str
    build_requirements: list[str]
    model_requirements: list[str]
    serving_requirements: list[str]
    skipped_requirements: list[str]
    key: str
    conda_file: Path | None = None
    sources: list[Path] = field(default_factory=list)

    @property
    def python_minor(self) -> str:
        """``major.minor`` of the wanted Python (what an interpreter must match)."""
        return ".".join(self.python_version.split(".")[:2])


def requirement_name(line: str) -> str | None:
    """The normalised project name a requirement line names, or None for options/URLs."""
    match = _NAME.match(line)
    if match is None or line.lstrip().startswith("-"):
        return None
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def serving_requirements() -> list[str]:
    """Our runtime dependencies a worker needs, from the installed jupyter-serve metadata."""
    try:
        declared = metadata.requires("jupyter-serve") or []
    except metadata.PackageNotFoundError:  # running from a source tree that was not installed
        declared = ["tornado>=6.3", "pandas>=2.0", "numpy>=1.24", "pyyaml>=6", "cloudpickle>=2.2"]
    return [
        requirement
        for requirement in declared
        if "extra ==" not in requirement and requirement_name(requirement) not in _NOTEBOOK_ONLY
    ]


def _read_requirements(path: Path, seen: list[Path]) -> list[str]:
    if path in seen:
        return []
    seen.append(path)
    lines: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            lines += _read_requirements(path.parent / line.split(None, 1)[1].strip(), seen)
        else:
            lines.append(line)
    return lines


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mlflow_version(model_dir: Path) -> str:
    try:
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return DEFAULT_MLFLOW_VERSION
    version = mlmodel.get("mlflow_version") if isinstance(mlmodel, dict) else None
    return str(version) if version else DEFAULT_MLFLOW_VERSION


def read_environment_spec(
    model_dir: str | Path, env_manager: str, *, install_mlflow: bool = False
) -> EnvironmentSpec:
    """The environment ``model_dir`` needs under ``env_manager``.

    Raises ``InvalidModelError`` when ``python_env.yaml`` or a requirements file it names cannot
    be read.
    """
    directory = Path(model_dir)
    sources: list[Path] = []
    python_version = ".".join(map(str, sys.version_info[:3]))
    build: list[str] = []
    lines: list[str] = []
    python_env = directory / "python_env.yaml"
    try:
        if python_env.is_file():
            sources.append(python_env)
            env = yaml.safe_load(python_env.read_text(encoding="utf-8")) or {}
            if not isinstance(env, dict):
                raise InvalidModelError(
                    f"{python_env} is not a mapping; expected MLflow's python_env.yaml "
                    "(python, build_dependencies, dependencies). Fix or remove the file."
                )
            python_version = str(env.get("python") or python_version)
            build = [str(item) for item in env.get("build_dependencies") or []]
            for item in env.get("dependencies") or []:
                text = str(item).strip()
                if text.startswith(("-r ", "--requirement ")):
                    lines += _read_requirements(directory / text.split(None, 1)[1], sources)
                else:
                    lines.append(text)
        elif (directory / "requirements.txt").is_file():
            lines = _read_requirements(directory / "requirements.txt", sources)
    except (OSError, yaml.YAMLError) as error:
        raise InvalidModelError(
            f"cannot read the environment of the model in {directory}: {error}. Expected a "
            "readable python_env.yaml and requirements.txt as MLflow writes them."
        ) from error
    skipped = [line for line in lines if requirement_name(line) in _MLFLOW_NAMES]
    model_lines = [line for line in lines if line not in skipped]
    if install_mlflow:
        model_lines.append(f"mlflow=={_mlflow_version(directory)}")
        skipped = []
    conda_file = directory / "conda.yaml"
    serving = serving_requirements()
    from jupyter_serve import _version

    package_dir = str(Path(__file__).resolve().parent.parent)
    key_material = {
        "env_manager": env_manager,
        "files": {p.name: _sha256(p) for p in sources},
        "conda": _sha256(conda_file) if env_manager == "conda" and conda_file.is_file() else None,
        "install_mlflow": install_mlflow,
        "serving": serving,
        "jupyter_serve": [package_dir, _version.__version__],
    }
    digest = hashlib.sha256(json.dumps(key_material, sort_keys=True).encode()).hexdigest()
    return EnvironmentSpec(
        env_manager=env_manager,
        python_version=python_version,
        build_requirements=build,
        model_requirements=model_lines,
        serving_requirements=serving,
        skipped_requirements=skipped,
        key=digest[:16],
        conda_file=conda_file if conda_file.is_file() else None,
        sources=sources,
    )
