"""A student's Python environment for tests: a fresh venv with the template's wheel installed.

Fresh means no --system-site-packages and no instructor checkout on its path. It is made once
per wheel (its folder is named after the wheel's hash) and reused by later tests and runs,
because installing torch into it takes a minute or two. A venv only counts once it finished
installing (``ready`` marker), so an interrupted run never leaves a half-made one in use.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import venv
from pathlib import Path

from grader.publish import student_package
from tests.conftest import ROOT

WHEEL = ROOT / "student_template" / student_package.wheel_name()


def _pip(python: Path, *args: str) -> None:
    r = subprocess.run([str(python), "-m", "pip", "install", "-q", *args], capture_output=True,
                       text=True, timeout=1500)
    if r.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(args)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")


def _fresh_venv(name: str, *installs: tuple[str, ...]) -> Path:
    """``$TMPDIR/<name>``'s python: a venv made once, each of ``installs`` one pip call in
    order, counted as made only once all of them finished (``ready``)."""
    home = Path(tempfile.gettempdir()) / name
    python = home / "bin" / "python"
    if (home / "ready").is_file():
        return python
    shutil.rmtree(home, ignore_errors=True)
    venv.create(home, with_pip=True, system_site_packages=False)
    for args in installs:
        _pip(python, *args)
    (home / "ready").write_text("")
    return python


def student_python() -> Path:
    """The venv's python; its bin/ also has ``grader-check``."""
    digest = hashlib.sha256(WHEEL.read_bytes()).hexdigest()[:16]
    # torch first, as Colab and a course's Jupyter already have it: the wheel takes it (>=2.1);
    # then the template's first cell, then what the course's notebooks import themselves.
    return _fresh_venv(f"grader-student-venv-{digest}", ("torch==2.13.0",), (f"{WHEEL}[cli]",),
                       ("matplotlib", "ipywidgets"))


def clean_env(python: Path) -> dict[str, str]:
    """This process's environment without anything that points at the instructor's checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "GRADER_ROOT")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


# What Colab's runtime has (among much else) that the checks rely on: torch, numpy, matplotlib,
# the kernel and widgets, and pyyaml and nbformat (both preinstalled there). No grader.
COLAB_PACKAGES = ("torch==2.13.0", "numpy", "matplotlib", "ipykernel", "ipywidgets", "pyyaml",
                  "nbformat")


def colab_python() -> Path:
    """A fresh venv holding only ``COLAB_PACKAGES``, made once and reused (``ready`` marker).
    Tests that install the student package into it take it out again (``remove_checks``)."""
    digest = hashlib.sha256(" ".join(COLAB_PACKAGES).encode()).hexdigest()[:16]
    # torch first and alone: pip must never pick another torch build.
    return _fresh_venv(f"grader-colab-venv-{digest}", ("torch==2.13.0",), COLAB_PACKAGES)


def remove_checks(python: Path) -> None:
    """The student package out of the venv again (a no-op when it is not there)."""
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "grader-checks"],
                   capture_output=True, text=True, timeout=300)
