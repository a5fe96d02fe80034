"""A course: the folder the grader is pointed at (``--course DIR``, else the current folder).

It holds ``assignments/``, ``reference/`` and ``student_template/``, and optionally
``course.yaml`` naming its student package, so two courses never share a wheel::

    name: recurrent-cells-checks   # the wheel's distribution name (default: grader-checks)
    version: "2027.1"              # its version (default: the grader's)

The grader's own repository is a course too (the bundled one): its top-level folders are the
default when no other course is named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

import grader
from grader.errors import SpecError
from grader.spec import Assignment

COURSE_FILE = "course.yaml"
DEFAULT_PACKAGE = "grader-checks"
_KEYS = ("name", "version", "title")
# Read by the gradebook (grader.gradebook.deadlines), not here: a mapping of assignment names.
_OTHER_KEYS = ("deadlines",)
# A distribution name and a version pip accepts, and nothing that could ride into a file name.
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*([a-z]+[0-9]*)?$")


@dataclass(frozen=True)
class Course:
    root: Path
    package: str = DEFAULT_PACKAGE
    version: str = grader.__version__
    title: str = ""

    @property
    def assignments_dir(self) -> Path:
        return self.root / "assignments"

    @property
    def reference_dir(self) -> Path:
        return self.root / "reference"

    @property
    def template_dir(self) -> Path:
        return self.root / "student_template"


def load(root: Path) -> Course:
    """The course at ``root``; ``course.yaml`` is optional (the defaults above)."""
    path = root / COURSE_FILE
    if not path.is_file():
        return Course(root=root)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: top level: expected a mapping")
    for key in raw:
        if key not in _KEYS + _OTHER_KEYS:
            from grader.spec_schema import unknown_key

            raise SpecError(f"{path}: {key}: {unknown_key(str(key), _KEYS + _OTHER_KEYS)}")
    values = {k: str(raw[k]) for k in _KEYS if k in raw}
    if not _NAME.match(values.get("name", DEFAULT_PACKAGE)):
        raise SpecError(f"{path}: name: expected a package name such as 'my-course-checks', "
                        f"got {raw['name']!r}")
    if not _VERSION.match(values.get("version", grader.__version__)):
        raise SpecError(f"{path}: version: expected a version such as '2027.1', "
                        f"got {raw['version']!r}")
    return Course(root=root, package=values.get("name", DEFAULT_PACKAGE),
                  version=values.get("version", grader.__version__),
                  title=values.get("title", ""))


def _project(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return re.sub(r"[-_.]+", "-", match.group(0)).lower() if match else requirement


def requirements(assignments: Iterable[Assignment]) -> tuple[str, ...]:
    """The assignments' ``requirements``, each once, in order: what grading installs."""
    return tuple(dict.fromkeys(r for a in assignments for r in a.requirements))


def student_requirements(specs: Iterable[bytes]) -> tuple[str, ...]:
    """What a course's student wheel requires beside its own, from the ``assignment.yaml`` of
    each checks bundle it carries: their ``requirements``, except the projects the wheel
    already requires (its loose ``torch>=2.1`` must win: a course's pin would replace Colab's
    torch). Read from the bundles, so the wheel and ``checks/`` never disagree."""
    from grader.publish.student_package import REQUIRES

    own = {_project(r) for r in REQUIRES}
    found: list[str] = []
    for text in specs:
        raw = yaml.safe_load(text)
        listed = raw.get("requirements", []) if isinstance(raw, dict) else []
        found += [str(r).strip() for r in listed if isinstance(r, str) and r.strip()]
    return tuple(r for r in dict.fromkeys(found) if _project(r) not in own)
