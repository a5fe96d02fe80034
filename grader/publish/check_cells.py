"""The cells ``grader build`` writes into each student notebook, and the visible checks it
embeds in the notebook's metadata.

* first, a setup cell: installs the student package by name when it is not importable (the
  wheel beside the notebook, where the template folder is there), then brings the assignment's
  data where the notebook reads it when it is absent, downloaded from the assignment's pinned
  ``data.url`` and verified file by file against the checksums of what the template ships;
* after each question's section (from its markdown heading to the next question's) that has
  visible checks, ``checks.check("<question>")``;
* last, ``checks.check_all()`` and ``checks.export()``.

Each cell carries ``metadata.grader.cell`` (``setup``, ``check``, ``submit``), so a rebuild
finds and replaces exactly these cells and leaves every other one as it was. They do nothing
when a grader runs the notebook (``grader.student.checks.grading``), so a student's copy is
graded unchanged. ``metadata.grader.checks`` holds the visible checks bundle (spec without
hidden checks, probes, visible expected values) for a notebook opened alone (Colab); the
grader never reads it.
"""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path

import nbformat

from grader import spec

CELL_KEY = "cell"
KINDS = ("setup", "check", "submit")


def _cell(kind: str, source: str, **extra: str) -> nbformat.NotebookNode:
    cell: nbformat.NotebookNode = nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
    cell.metadata["grader"] = {CELL_KEY: kind, **extra}
    # A stable id (nbformat's are random), so the same build writes the same bytes.
    cell.id = "grader-" + hashlib.sha256(f"{kind} {extra}".encode()).hexdigest()[:12]
    return cell


def setup_source(*, requirement: str, wheel: str, data: dict[str, object] | None) -> str:
    """The setup cell's code. ``data``: {"url", "dest", "files": {name: sha256}} or None."""
    lines = [
        "# Setup (written by `grader build`; keep this cell first and run it once). It installs",
        "# the course's checks library (your torch is kept) and fetches the data if it is missing.",
        "try:",
        "    from grader import notebook as checks",
        "except ImportError:",
        "    import os",
        f"    _package = {wheel!r} if os.path.exists({wheel!r}) else {requirement!r}",
        "    %pip install -q {_package}",
        "    from grader import notebook as checks",
    ]
    if data is not None:
        lines.append(f"checks.fetch_data({data['url']!r}, {data['dest']!r}, {data['files']!r})")
    return "\n".join(lines)


def check_source(question: str) -> str:
    return (f"# Check {question} (written by `grader build`): run it after your code above.\n"
            f"checks.check({question!r})")


SUBMIT_SOURCE = ("# Before you submit (written by `grader build`): save the notebook, then run this.\n"
                 "checks.check_all()\n"
                 "checks.export()")


def _heading_of(cell: nbformat.NotebookNode, questions: list[str]) -> str | None:
    """The question a markdown cell's heading opens ("## Q2 ..." for question Q2), if any."""
    if cell.cell_type != "markdown":
        return None
    for line in cell.source.splitlines():
        match = re.match(r"^#+\s+(\S+)", line)
        if match is None:
            continue
        word = match.group(1).rstrip(":.")
        return word if word in questions else None
    return None


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without what ``add`` writes: its cells and the embedded checks."""
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells
                 if c.get("metadata", {}).get("grader", {}).get(CELL_KEY) not in KINDS]
    out.metadata.get("grader", {}).pop("checks", None)
    return out


def add(nb: nbformat.NotebookNode, *, assignment: spec.Assignment, bundle: dict[str, bytes],
        requirement: str, wheel: str, data: dict[str, object] | None = None
        ) -> nbformat.NotebookNode:
    """``nb`` with the setup, check and submit cells in place (the old ones replaced) and the
    visible checks ``bundle`` (file name -> content) in ``metadata.grader.checks``."""
    out = strip(nb)
    questions = [q.id for q in assignment.questions]
    checked = {c.question for c in assignment.checks
               if spec.shipped_to_students(c.visibility, c.kind)}
    cells: list[nbformat.NotebookNode] = []
    current: str | None = None

    def close() -> None:
        if current is not None and current in checked:
            cells.append(_cell("check", check_source(current), question=current))

    for cell in out.cells:
        opened = _heading_of(cell, questions)
        if opened is not None:
            close()
            current = opened
        cells.append(cell)
    close()
    out.cells = ([_cell("setup", setup_source(requirement=requirement, wheel=wheel, data=data))]
                 + cells + [_cell("submit", SUBMIT_SOURCE)])
    meta = out.metadata.setdefault("grader", {})
    meta["assignment"] = assignment.name
    meta["checks"] = {name: content.decode("utf-8") for name, content in sorted(bundle.items())}
    return out


def data_pins(files: dict[Path, bytes], *, url: str, dest: str, folder: Path) -> dict[str, object] | None:
    """What the setup cell fetches: the files the template ships in ``folder``, by name and
    sha256; None when the assignment has no download (``url`` empty) or no files there."""
    pinned = {p.name: hashlib.sha256(c).hexdigest() for p, c in sorted(files.items())
              if p.parent == folder}
    if not url or not pinned:
        return None
    return {"url": url, "dest": dest, "files": pinned}
