"""``grader check``: a student grades their own notebook on the visible checks, sandboxed.

The same plan, sandbox and pipeline as ``grader run``, on one notebook, into a scratch folder;
with ``out_dir`` the log, the figures and the feedback page are kept there.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rich.console import Console

from grader import logfile, spec
from grader.errors import InputError
from grader.grading.expected import EXPECTED_NAME
from grader.grading.run import GradingSession
from grader.logfile import SubmissionLog
from grader.submission import assignment_name, stage


def self_check(*, notebook: Path, checks_dir: Path | None, root: Path | None,
               data_dir: Path | None = None, console: Console | None = None,
               out_dir: Path | None = None) -> SubmissionLog:
    """Grade ``notebook`` on the visible checks and return its log.

    Checks come from the bundle beside the notebook (``checks/<assignment>/``, what
    ``grader build`` ships), ``checks_dir``, or else the project's assignment and reference.
    """
    from grader.reports import feedback

    console = console or Console(stderr=True, soft_wrap=True)
    if notebook.is_symlink():  # it may point at the reference or a classmate's work
        raise InputError(f"{notebook}: is a symbolic link; only a notebook file itself is graded")
    name = assignment_name(notebook)
    shipped = checks_dir or notebook.resolve().parent / "checks" / name
    bundle: Path | None
    if (shipped / EXPECTED_NAME).is_file():
        console.print(f"checks from {shipped}/", markup=False, highlight=False)
        a, project, bundle = spec.load(shipped).visible_only(), shipped, shipped
    elif root is not None and (root / "assignments" / name).is_dir():
        a, project, bundle = spec.find(root, name).visible_only(), root, None
    else:
        raise InputError(f"{notebook}: no checks found for assignment {name!r} "
                         f"(looked in {shipped}/; pass --checks)")
    scratch = Path(tempfile.mkdtemp(prefix="grader-check-"))
    try:
        student_dir = notebook.resolve().parent
        if notebook.name != a.notebook:
            # Named otherwise than the assignment's notebook: grade a private copy, renamed.
            staged = stage(student_dir)
            student_dir = scratch / "submission" / student_dir.name
            student_dir.parent.mkdir()
            shutil.move(str(staged), student_dir)
            (student_dir / notebook.name).replace(student_dir / a.notebook)
        grades = scratch / "grades"
        with GradingSession(root=project, assignment=a, out_dir=grades, force=True,
                            data_dir=data_dir, console=console, checks_dir=bundle) as session:
            [graded] = session.grade([student_dir], jobs=1)
        log = graded.log
        if out_dir is not None:
            produced = grades / student_dir.name
            shutil.rmtree(out_dir / "figures", ignore_errors=True)
            if (produced / "figures").is_dir():
                shutil.copytree(produced / "figures", out_dir / "figures")
            logfile.write(out_dir / logfile.LOG_NAME, log)
            feedback.write_page(log, out_dir, titles={q.id: q.title for q in a.questions},
                                visible_only=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return log
