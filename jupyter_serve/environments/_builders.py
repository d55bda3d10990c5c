"""Building one environment with uv, the stdlib ``venv`` + pip, or conda.

Every builder makes the environment at a given directory, installs the model's requirements
and our serving requirements in one resolver call, and links the running jupyter-serve package
into its site-packages (a symlink: the workers run exactly the code of this installation, and
nothing of this interpreter's other packages leaks in). A failed command raises one
`DeploymentError` carrying the line of the installer's output that says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from jupyter_serve.environments._progress import BuildProgress
from jupyter_serve.environments._spec import EnvironmentSpec
from jupyter_serve.errors import DeploymentError

ENV_MANAGERS = ("virtualenv", "uv", "conda")
_COMMAND_TIMEOUT_SECONDS = 1800.0
_ERROR_MARKERS = ("\u00d7", "error:", "ERROR:", "\u2570\u2500\u25b6")  # uv: times sign, arrow


def uv_command() -> list[str]:
    """How to run uv: ``uv`` on PATH, else ``python -m uv``; `DeploymentError` if neither."""
    found = shutil.which("uv")
    if found is not None:
        return [found]
    try:
        import uv  # type: ignore[import-not-found, unused-ignore]

        return [str(uv.find_uv_bin())]
    except (ImportError, FileNotFoundError):
        pass
    raise DeploymentError(
        "--env-manager uv needs the uv installer, which is neither on PATH nor importable here. "
        f"Install it with `{sys.executable} -m pip install uv`, or use --env-manager virtualenv."
    )


def conda_command() -> str:
    """``conda`` on PATH (or $CONDA_EXE); `DeploymentError` naming what is missing otherwise."""
    found = os.environ.get("CONDA_EXE") or shutil.which("conda")
    if found is None:
        raise DeploymentError(
            "--env-manager conda needs conda, but no `conda` executable is on PATH (and "
            "$CONDA_EXE is not set). Install Miniforge or Miniconda and put conda on PATH, or "
            "use --env-manager uv or --env-manager virtualenv."
        )
    return found


def require_env_manager(env_manager: str) -> None:
    """Fail at once (`DeploymentError`) when ``env_manager`` is unknown or its tool is missing."""
    if env_manager == "uv":
        uv_command()
    elif env_manager == "conda":
        conda_command()
    elif env_manager != "virtualenv":
        raise DeploymentError(
            f"unknown env manager {env_manager!r}; expected local, virtualenv, uv or conda."
        )


def _interpreter_candidates() -> list[Path]:
    names = [sys.executable, getattr(sys, "_base_executable", sys.executable)]
    for minor in range(8, 20):
        found = shutil.which(f"python3.{minor}")
        if found:
            names.append(found)
    return [Path(name) for name in names]


def _version_of(python: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(python), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def find_interpreter(spec: EnvironmentSpec) -> tuple[Path, str]:
    """An interpreter of the model's ``major.minor`` Python and its full version.

    Another patch release is accepted (wheels are per minor version); no match raises
    `DeploymentError` naming what was asked and what this machine has.
    """
    available: dict[str, Path] = {}
    for candidate in _interpreter_candidates():
        version = _version_of(candidate)
        if version is not None:
            available.setdefault(version, candidate)
    for version, path in available.items():
        if ".".join(version.split(".")[:2]) == spec.python_minor:
            return path, version
    have = ", ".join(f"{v} ({p})" for v, p in available.items()) or "none found"
    raise DeploymentError(
        f"the model needs Python {spec.python_minor} (its python_env.yaml says "
        f"{spec.python_version}), but this machine has no such interpreter on PATH (have: "
        f"{have}). Install python{spec.python_minor}, or serve with --env-manager local to use "
        "this kernel's Python."
    )


def _failing_line(output: list[str]) -> str:
    for index, line in enumerate(output):
        if line.strip().startswith(_ERROR_MARKERS):
            block = [line.strip()]
            for follow in output[index + 1 : index + 8]:
                if not follow.startswith((" ", "\t")) or not follow.strip():
                    break
                block.append(follow.strip())
            return " ".join(" ".join(block).split())
    meaningful = [line.strip() for line in output if line.strip()]
    return meaningful[-1] if meaningful else "no output"


def run_installer(command: Sequence[str], what: str) -> list[str]:
    """Run ``command`` (merged output kept), bounded in time; `DeploymentError` on failure
    with the line of its output that says why."""
    try:
        process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "NO_COLOR": "1"},
        )
    except OSError as error:
        raise DeploymentError(f"could not run {command[0]} to {what}: {error}.") from error
    timer = threading.Timer(_COMMAND_TIMEOUT_SECONDS, process.kill)
    timer.start()
    try:
        assert process.stdout is not None
        output = list(process.stdout)
        code = process.wait()
    except BaseException:  # an interrupted build must not go on writing into its directory
        process.kill()
        process.wait()
        raise
    finally:
        timer.cancel()
    if code != 0:
        raise DeploymentError(
            f"could not {what}: {_failing_line(output)} (exit code {code} of "
            f"`{' '.join(command[:4])} ...`)."
        )
    return output


def site_packages(env_dir: Path) -> Path:
    """The site-packages directory of a POSIX environment at ``env_dir``."""
    found = sorted(env_dir.glob("lib/python3*/site-packages"))
    if not found:
        raise DeploymentError(
            f"the environment at {env_dir} has no lib/python3*/site-packages; expected a "
            "Python environment. Remove the directory so it is built again."
        )
    return found[0]


def link_jupyter_serve(env_dir: Path) -> None:
    """Make the running jupyter-serve package importable in the environment at ``env_dir``."""
    package_dir = Path(__file__).resolve().parent.parent
    link = site_packages(env_dir) / "jupyter_serve"
    if link.is_symlink() or link.exists():
        return
    link.symlink_to(package_dir, target_is_directory=True)


def _requirements_file(spec: EnvironmentSpec, env_dir: Path) -> Path:
    # A file, not argv: requirement lines may carry options (--index-url, hashes).
    path = env_dir / "jupyter-serve-requirements.txt"
    path.write_text(
        "\n".join([*spec.model_requirements, *spec.serving_requirements]) + "\n",
        encoding="utf-8",
    )
    return path


def _install_message(spec: EnvironmentSpec) -> str:
    count = len(spec.model_requirements)
    skipped = (
        f" (skipping {', '.join(spec.skipped_requirements)}: workers do not import MLflow; "
        "pass --install-mlflow to install it)"
        if spec.skipped_requirements
        else ""
    )
    return (
        f"installing {count} requirement{'s' if count != 1 else ''} of the model and "
        f"{len(spec.serving_requirements)} of jupyter-serve's workers…{skipped}"
    )


def _install_failure(spec: EnvironmentSpec) -> str:
    # The model's pins are kept as they are: name ours, so a clash with them is recognisable.
    return (
        "install the model's requirements (requirements.txt, kept as pinned) together with "
        f"those of jupyter-serve's workers ({', '.join(spec.serving_requirements)})"
    )


def build_environment(spec: EnvironmentSpec, env_dir: Path, progress: BuildProgress) -> Path:
    """Build the environment ``spec`` describes at ``env_dir`` (which must not exist yet) and
    return its Python executable. Raises `DeploymentError`; the caller removes ``env_dir``."""
    if spec.env_manager == "conda":
        return _build_with_conda(spec, env_dir, progress)
    python, version = find_interpreter(spec)
    shown = version if version == spec.python_version else f"{version} for {spec.python_version}"
    progress.step(
        0, f"creating environment {spec.key} ({spec.env_manager}, Python {shown}) in {env_dir}…"
    )
    env_python = env_dir / "bin" / "python"
    if spec.env_manager == "uv":
        uv = uv_command()
        run_installer(
            [*uv, "venv", "--quiet", "--python", str(python), str(env_dir)], "create the venv"
        )
        progress.step(2, _install_message(spec))
        run_installer(
            [
                *uv,
                "pip",
                "install",
                "--python",
                str(env_python),
                "-r",
                str(_requirements_file(spec, env_dir)),
            ],
            _install_failure(spec),
        )
    else:
        run_installer([str(python), "-m", "venv", str(env_dir)], "create the virtualenv")
        if spec.build_requirements:
            progress.step(1, f"installing build tools {', '.join(spec.build_requirements)}…")
            run_installer(
                [str(env_python), "-m", "pip", "install", "--quiet", *spec.build_requirements],
                "install the build tools of python_env.yaml",
            )
        progress.step(2, _install_message(spec))
        run_installer(
            [
                str(env_python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "-r",
                str(_requirements_file(spec, env_dir)),
            ],
            _install_failure(spec),
        )
    progress.step(3, "linking jupyter-serve into the environment…")
    link_jupyter_serve(env_dir)
    return env_python


def _build_with_conda(spec: EnvironmentSpec, env_dir: Path, progress: BuildProgress) -> Path:
    conda = conda_command()
    if spec.conda_file is None:
        raise DeploymentError(
            f"--env-manager conda needs the model's conda.yaml, and {env_dir.name} has none; "
            "use --env-manager uv or virtualenv (they read python_env.yaml)."
        )
    progress.step(0, f"creating conda environment {spec.key} from {spec.conda_file}…")
    run_installer(
        [conda, "env", "create", "--prefix", str(env_dir), "--file", str(spec.conda_file)],
        "create the conda environment",
    )
    env_python = env_dir / "bin" / "python"
    progress.step(2, f"installing {len(spec.serving_requirements)} requirements of the workers…")
    run_installer(
        [str(env_python), "-m", "pip", "install", "--quiet", *spec.serving_requirements],
        "install jupyter-serve's serving requirements into the conda environment",
    )
    progress.step(3, "linking jupyter-serve into the environment…")
    link_jupyter_serve(env_dir)
    return env_python
