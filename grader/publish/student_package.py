"""The student package: a small wheel, the checks library, for Jupyter, Colab and CI.

``grader build`` writes ``student_template/grader_checks-<version>-py3-none-any.whl``, the file
a course publishes on a package index so that the template's setup cell installs it by name
(``requirement``). It holds the import package ``grader`` cut down to what the checks need
(comparison, wire, spec, probes helper, plan, scoring and log, ``grader.notebook``, the
``grader-check`` command, the feedback page) and no course content: each assignment's visible
checks travel in its notebook's metadata and the template's ``checks/`` folder
(``grader.publish.check_cells``). No sandbox, no reference, no hidden check, nothing that
imports only on Linux. It accepts the torch that is there (``torch>=2.1,<3``): Colab's must not
be replaced.

The wheel is written by hand rather than by a build backend: its contents are exactly the files
listed here, and fixed timestamps make it byte-for-byte reproducible, so ``grader build
--check-only`` can tell whether the one in the template is stale.
"""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import zipfile
from pathlib import Path
from typing import Sequence

import grader

DIST_NAME = "grader-checks"
# The modules a student needs, by name. Every import they make at module level must work on
# macOS and Windows (tests/test_portable_imports.py checks the student's; the fresh-venv test
# in tests/test_student_package.py installs this list and runs it).
# The data-set package goes whole: grading.plan (requests, staging) imports it, module by module.
_DATASETS = tuple(f"datasets/{p.stem}" for p in
                  sorted((Path(grader.__file__).resolve().parent / "datasets").glob("*.py")))
MODULES = ("__init__", "errors", "compare", "wire", "spec", "probelib", "execution", "files",
           "logfile", "submission", "notebook", "grading/__init__", "grading/score",
           "grading/plan", "grading/pipeline", *_DATASETS, "student/__init__", "student/checks",
           "student/cli", "student/kernel", "student/submit", "reports/__init__",
           "reports/feedback")
# nbformat: the in-notebook check logs through grading.pipeline, which reads notebooks with it.
REQUIRES = ("numpy>=1.26", "pyyaml>=6.0", "torch>=2.1,<3", "nbformat>=5.9")
# For grader-check (runs the notebook file in a kernel); Jupyter and Colab have these already.
CLI_REQUIRES = ("nbclient>=0.10", "ipykernel>=6.29")
REQUIRES_PYTHON = ">=3.10"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def requirement(version: str = grader.__version__, dist: str = DIST_NAME) -> str:
    """What the template's setup cell installs by name from the package index: this release's
    compatible versions (the checks bundles in the notebooks are read by this release's code)."""
    return f"{dist}~={version}"


def wheel_name(version: str = grader.__version__, dist: str = DIST_NAME) -> str:
    return f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"


def _metadata(version: str, dist: str = DIST_NAME, requires: Sequence[str] = ()) -> str:
    lines = ["Metadata-Version: 2.4", f"Name: {dist}", f"Version: {version}",
             "Summary: The visible checks of the course's notebooks: run them in Jupyter, "
             "Colab or CI", "License-Expression: MIT", f"Requires-Python: {REQUIRES_PYTHON}"]
    lines += [f"Requires-Dist: {r}" for r in (*REQUIRES, *requires)]
    lines.append("Provides-Extra: cli")
    lines += [f'Requires-Dist: {r}; extra == "cli"' for r in CLI_REQUIRES]
    return "\n".join(lines) + "\n\n" + (
        "Run the visible checks of an assignment in your notebook:\n\n"
        "    from grader import notebook as checks\n    checks.check(\"Q1\")\n")


def files(*, package_dir: Path, bundles: dict[str, dict[str, bytes]],
          version: str = grader.__version__, dist: str = DIST_NAME,
          requires: Sequence[str] = ()) -> dict[str, bytes]:
    """Member name -> content, dist-info included (RECORD last, as it lists the others).

    ``bundles``: assignment name -> {file name -> content} of its visible checks bundle.
    """
    out: dict[str, bytes] = {}
    for module in MODULES:
        out[f"grader/{module}.py"] = (package_dir / f"{module}.py").read_bytes()
    for name, bundle in sorted(bundles.items()):
        for filename, content in sorted(bundle.items()):
            out[f"grader/checks/{name}/{filename}"] = content
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    out[f"{info}/METADATA"] = _metadata(version, dist, requires).encode()
    out[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: grader.publish.student_package\n"
                            b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    out[f"{info}/entry_points.txt"] = b"[console_scripts]\ngrader-check = grader.student.cli:main\n"
    out[f"{info}/top_level.txt"] = b"grader\n"
    record = [f"{n},sha256={_digest(c)},{len(c)}" for n, c in out.items()]
    out[f"{info}/RECORD"] = ("\n".join(record + [f"{info}/RECORD,,"]) + "\n").encode()
    return out


def _digest(content: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


def build_wheel(*, package_dir: Path, bundles: dict[str, dict[str, bytes]],
                version: str = grader.__version__, dist: str = DIST_NAME,
                requires: Sequence[str] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files(package_dir=package_dir, bundles=bundles,
                                   version=version, dist=dist, requires=requires).items():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = (0o644 | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content, compresslevel=9)
    return buf.getvalue()


def template_wheel(*, template_dir: Path, checks: dict[Path, bytes],
                   version: str = grader.__version__, dist: str = DIST_NAME,
                   requires: Sequence[str] | None = None) -> dict[Path, bytes]:
    """The wheel ``grader build`` writes into ``template_dir``, made from the same checks files
    it ships there (``checks``: path -> content, as ``session.checks_bundle`` returns them)."""
    bundles: dict[str, dict[str, bytes]] = {}
    root = template_dir / "checks"
    for path, content in checks.items():
        if root not in path.parents:
            continue
        rel = path.relative_to(root)
        bundles.setdefault(rel.parts[0], {})["/".join(rel.parts[1:])] = content
    if requires is None:  # the assignments' own requirements, as their shipped specs list them
        from grader.course import student_requirements

        requires = student_requirements(
            b.get("assignment.yaml", b"") for _, b in sorted(bundles.items()))
    package_dir = Path(grader.__file__).resolve().parent
    # A course names and versions its own wheel (grader.course): two courses never share one.
    # It is the library alone: the course's visible checks travel in the notebooks' metadata and
    # the template's checks/ folder; the bundles only say what the assignments require.
    return {template_dir / wheel_name(version, dist): build_wheel(
        package_dir=package_dir, bundles={}, version=version, dist=dist, requires=requires)}


def stale_wheel(*, template_dir: Path, checks: dict[Path, bytes],
                version: str = grader.__version__, dist: str = DIST_NAME,
                requires: Sequence[str] | None = None) -> dict[Path, bytes]:
    """``template_wheel``, but only if the file in ``template_dir`` differs (what to write).

    ``checks`` must be the bundles as the template will hold them after the build, so that the
    wheel and ``checks/`` never disagree."""
    return {path: content for path, content in template_wheel(template_dir=template_dir,
                                                               checks=checks, version=version,
                                                               dist=dist, requires=requires).items()
            if not path.is_file() or path.read_bytes() != content}
