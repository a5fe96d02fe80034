"""``grader-check NOTEBOOK``: a notebook file run in a fresh Jupyter kernel, then its checks.

For a student's terminal or CI, on any OS. The grader's own way, minus the sandbox: the plan
(``grader.grading.plan``: requests, staging, limits), the pipeline (``open_submission``,
``execute``, ``make_log``) and a ``KernelExecutor`` in place of the sandboxed worker. The log
is the one ``grader check`` writes for the same code, but for its timings and protections.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from grader.errors import GraderError, InputError
from grader.logfile import SubmissionLog
from grader.student.checks import CELL_SLACK, PROBE_SLACK, CheckReport, bundle_named

EXAMPLE = 'grader-check homework.ipynb --out grading/ --summary "$GITHUB_STEP_SUMMARY"'


def main(argv: Sequence[str] | None = None) -> int:
    """Run the notebook in a Jupyter kernel, then its visible checks; print why each failed."""
    parser = argparse.ArgumentParser(
        prog="grader-check",
        description="Run a notebook in a fresh Jupyter kernel (no sandbox: it is your own code), "
                    "then its visible checks, and explain each result.",
        epilog=f"Example: {EXAMPLE}")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--assignment", help="assignment name (default: the notebook's metadata, "
                                             "else its file name)")
    parser.add_argument("--checks", type=Path, help="a checks bundle folder (default: ./checks/, "
                                                    "else the installed package's)")
    parser.add_argument("--out", type=Path, help="also write submission_log.json, figures/ and "
                                                 "feedback.html here")
    parser.add_argument("--summary", type=Path, help="append a markdown table to this file "
                                                     "(in CI: $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--timeout", type=float, help="seconds per cell (default: twice the "
                                                      "assignment's limit)")
    parser.add_argument("--probe-timeout", type=float, help="seconds per check (default: twice "
                                                            "the assignment's limit)")
    args = parser.parse_args(argv)
    try:
        log = check_notebook(notebook=args.notebook, assignment=args.assignment,
                             checks_dir=args.checks, out_dir=args.out, timeout=args.timeout,
                             probe_timeout=args.probe_timeout)
    except GraderError as exc:
        print(f"grader-check: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(log_text(log))
    if args.summary is not None:
        from grader.reports import feedback

        with args.summary.open("a", encoding="utf-8") as f:
            f.write(feedback.markdown_summary(log, visible_only=True))
    return 0


def log_text(log: SubmissionLog) -> str:
    # A failed import first: the errors after it are its consequences (the first cause of a cascade).
    imports = [e for e in log.errors if "ModuleNotFoundError" in e["message"]
               or "ImportError" in e["message"]][:1]
    lines = [f"note: {e['message']}" for e in imports] + [CheckReport(log).text()]
    lines += [f"note: {e['message']}" for e in log.errors if e not in imports]
    return "\n".join(lines)


def check_notebook(*, notebook: Path, assignment: str | None = None,
                   checks_dir: Path | None = None, out_dir: Path | None = None,
                   timeout: float | None = None, probe_timeout: float | None = None
                   ) -> SubmissionLog:
    """Grade ``notebook`` on its visible checks in a kernel; with ``out_dir`` the log, the
    figures and the feedback page are written there, as ``grader check --out`` writes them."""
    from grader import logfile
    from grader.grading.pipeline import RunContext, execute, make_log, open_submission
    from grader.grading.plan import GradingPlan
    from grader.student.kernel import KernelExecutor
    from grader.submission import assignment_name

    if notebook.is_symlink():  # as grader check: it may point at someone else's notebook
        raise InputError(f"{notebook}: is a symbolic link; only a notebook file itself is graded")
    if not notebook.is_file():
        raise InputError(f"{notebook}: no such notebook")
    started = time.perf_counter()
    bundle = bundle_named(assignment or assignment_name(notebook), checks_dir, what=str(notebook),
                          notebook=notebook)
    a = bundle.assignment
    # The notebook's data, where the bundle says; none found is no error (the notebook's own
    # folder may hold it, and it is staged with the notebook).
    plan = GradingPlan.build(a, missing_data_ok=True)
    cell = timeout if timeout is not None else CELL_SLACK * a.cell_seconds
    probe = probe_timeout if probe_timeout is not None else PROBE_SLACK * a.probe_seconds
    plan = replace(plan, limits=replace(
        plan.limits, cell_seconds=cell, probe_seconds=probe,
        notebook_seconds=max(cell, CELL_SLACK * a.notebook_seconds)))
    folder = notebook.resolve().parent
    ctx = RunContext(plan=plan, expected=bundle.expected, out_dir=out_dir or folder,
                     fingerprint="", write=False)
    sub = open_submission(ctx, folder, notebook_path=folder / notebook.name)
    execution = None
    if sub.notebook is not None:
        with KernelExecutor(limits=plan.limits) as executor:
            execution = execute(ctx, sub, executor)
    # No cache key: a log from an unsandboxed kernel is never one `grader run` may reuse.
    log = make_log(a, student=sub.student, notebook_name=a.notebook, notebook=sub.notebook,
                   execution=execution, expected=bundle.expected, truth=plan.truth,
                   errors=sub.errors, notes=sub.notes, started=started, figures_dir=out_dir)
    if out_dir is not None:
        from grader.reports import feedback

        logfile.write(out_dir / logfile.LOG_NAME, log)
        feedback.write_page(log, out_dir, titles={q.id: q.title for q in a.questions},
                            visible_only=True)
    return log


if __name__ == "__main__":
    sys.exit(main())
