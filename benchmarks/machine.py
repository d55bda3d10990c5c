"""The facts that make a benchmark result reproducible: cores, CPU, versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

PRODUCT_PACKAGES = ("jupyter-serve", "tornado", "pandas", "numpy", "scikit-learn", "skops")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _mlflow_version(mlflow_python: Path) -> str:
    done = subprocess.run(
        [str(mlflow_python), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() or f"unknown (exit {done.returncode})"


def _wrk_version() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        return "not installed"
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    words = (done.stdout or done.stderr).split()
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright ...": the second word is the version.
    return words[1] if len(words) > 1 else "unknown"


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    return os.getloadavg()[0]


def describe_machine(mlflow_python: Path) -> dict[str, str]:
    """Cores, CPU model, OS, Python and the versions of everything measured."""
    facts = {
        "cores (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU": _cpu_model(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "mlflow (reference venv)": _mlflow_version(mlflow_python),
        "wrk": _wrk_version(),
    }
    facts.update({package: _version(package) for package in PRODUCT_PACKAGES})
    return facts
