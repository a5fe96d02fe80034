"""``grader``: a thin command-line layer over the library (click + rich).

Exit status: 0 whenever grading ran, whatever the scores; otherwise the ``exit_code`` of the
``GraderError`` that stopped it (see ``grader.errors``), with one line on stderr.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from grader import interrupts, logfile, spec
from grader.files import atomic_write, atomic_write_text
from grader.reports import feedback
from grader.submission import student_dirs

if TYPE_CHECKING:
    from grader.grading.pipeline import Graded
from grader.errors import GraderError, InputError



class _PipeConsole(Console):
    """stdout for `grader report … | head`: a reader that stops early is no failure (rich
    would exit 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(0)


console = Console(stderr=True, highlight=False, soft_wrap=True)
out = _PipeConsole(highlight=False, soft_wrap=True)


def find_root(explicit: Path | None) -> Path | None:
    """The project folder holding ``assignments/``: --root, $GRADER_ROOT, cwd upwards, package."""
    candidates = []
    if explicit is not None:
        if not (explicit / "assignments").is_dir():
            raise InputError(f"--root {explicit}: no assignments/ folder there")
        return explicit
    if os.environ.get("GRADER_ROOT"):
        candidates.append(Path(os.environ["GRADER_ROOT"]))
    here = Path.cwd()
    candidates += [here, *here.parents, Path(__file__).resolve().parent.parent]
    for c in candidates:
        if (c / "assignments").is_dir():
            return c
    return None


def _need_root(explicit: Path | None) -> Path:
    root = find_root(explicit)
    if root is None:
        raise InputError("no assignments/ folder found (use --root or run inside the project)")
    return root


def _choose_assignment(root: Path, dirs: list[Path], name: str | None) -> spec.Assignment:
    """The assignment named, else the one whose notebook the folders hold.

    A folder's notebook counts under the same rule grading uses (``choose_notebook``); a lone
    notebook named otherwise counts for the assignment its metadata declares.
    """
    if name:
        return spec.find(root, name)
    from grader.submission import assignment_name, notebooks_in

    candidates = spec.load_all(root)
    present = [a for a in candidates if any((d / a.notebook).is_file() for d in dirs)]
    if not present:
        named: set[str] = set()
        for d in dirs:
            files, _ = notebooks_in(d) if d.is_dir() and not d.is_symlink() else ([], [])
            named.update(assignment_name(f) for f in files)
        present = [a for a in candidates if a.name in named]
    if len(present) == 1:
        return present[0]
    if not present:
        wanted = ", ".join(a.notebook for a in candidates)
        raise InputError(f"no student folder holds a known notebook ({wanted}); "
                         "choose the assignment with --assignment")
    found = ", ".join(a.name for a in present)
    raise InputError(f"the submissions hold notebooks of several assignments ({found}); "
                     "choose one with --assignment")


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GraderError as exc:
            click.echo(f"grader: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            # `grader report … | head`: the reader has what it wanted; that is not a failure.
            # Python would complain again flushing stdout at exit, so point it at /dev/null.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except OSError as exc:
            if exc.errno not in _UNWRITABLE:
                raise
            # A full disk or a read-only output folder: one line and exit 3, not a traceback.
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"grader: error: cannot write {where}{exc.strerror or exc}", err=True)
            sys.exit(3)


_UNWRITABLE = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})


@click.group(cls=_Group)
@click.version_option(package_name="grader")
def main() -> None:
    """Grade deep-learning homework notebooks in a sandbox.

    Example: grader run submissions/
    """


@main.command()
@click.argument("submissions", type=click.Path(path_type=Path))
@click.option("--assignment", "-a", help="Assignment name (default: the one whose notebook the submissions hold).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Where logs go (default: grades/ beside SUBMISSIONS).")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=os.cpu_count() or 1, show_default=True, help="Submissions graded at once.")
@click.option("--threads", type=click.IntRange(1, 64), default=None, help="torch threads per submission (default 1). Budgets are CPU seconds per thread. More threads rarely help the course's small models: measured on 2 cores, a training cell took 8 s with 1 thread and 89 s with 2 beside other work.")
@click.option("--force", is_flag=True, help="Regrade even where an up-to-date log exists.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="Data folder for assignments that need one.")
@click.option("--course", "--root", "root", type=click.Path(path_type=Path), help="Course folder (default: the current one, else the bundled course) holding assignments/ and reference/.")
@click.option("--checks", "checks_dir", type=click.Path(path_type=Path), help="A checks bundle (grader bundle) to grade with instead of reference/.")
@click.option("--scheduler", envvar="GRADER_SCHEDULER", metavar="ADDRESS", help="Run the submissions on a Dask cluster, e.g. tcp://HOST:8786 (or $GRADER_SCHEDULER); the reference, expected values and grading stay here. Needs pip install -e '.[cluster]'; see docs/cluster.md.")
@click.option("--allow-unconfined", is_flag=True, help="With --scheduler: also use Dask workers whose sandbox has a protection off (each is reported).")
@click.option("--only", multiple=True, metavar="NAME", help="Regrade just this student (repeatable); the others' logs stay and the summary still lists everyone.")
@click.option("--overrides", "overrides_csv", type=click.Path(path_type=Path), help="overrides.csv (student,target,points,reason,who) applied on top of the automatic scores (default: OUT/overrides.csv if there); docs/gradebook.md.")
@click.option("--submission-metadata", "metadata_dir", type=click.Path(path_type=Path), help="A folder of <student>/submission_metadata.json (Gradescope's, with created_at) saying when each was submitted; never read from a student's own folder.")
@click.option("--extensions", "extensions_csv", type=click.Path(path_type=Path), help="Per-student extensions (student,until or student,days) to the assignment's deadline (default: OUT/extensions.csv if there).")
@click.option("--keep-warm", "keep_warm", type=click.FloatRange(min=0), default=None, metavar="SECONDS", help="Keep this run's warm worker (its torch and warm-up imports done) for the next run, which then starts in milliseconds instead of seconds; it ends after SECONDS without a run (those of the run that started it; default $GRADER_KEEP_WARM, else 0: off). See docs/architecture.md.")
@click.option("--allow-unprotected", is_flag=True, help="Grade even where this machine's sandbox cannot confine student code (as root without an unprivileged uid to drop to; neither Landlock nor another uid guarding the grader's files). Refused otherwise (exit 5); each protection off is logged under sandbox.off. See docs/security.md.")
def run(submissions: Path, assignment: str | None, out_dir: Path | None, jobs: int,
        threads: int | None, force: bool, data_dir: Path | None, root: Path | None,
        checks_dir: Path | None, scheduler: str | None, allow_unconfined: bool,
        only: tuple[str, ...] = (), overrides_csv: Path | None = None,
        extensions_csv: Path | None = None, metadata_dir: Path | None = None,
        allow_unprotected: bool = False, keep_warm: float | None = None) -> None:
    """Grade every SUBMISSIONS/<student>/<notebook>.ipynb.

    Writes <out>/<student>/submission_log.json and <out>/summary.csv.

    Example: grader run submissions/ --out grades/ -j 2

    Example: grader run submissions/ --scheduler tcp://head-node:8786

    Example: grader run submissions/ --allow-unprotected  (a machine that cannot confine student code: say so in each log, and grade)

    Example: grader run submissions/ --keep-warm 600  (the next run within 10 minutes skips the worker's seconds of imports)
    """
    from grader.grading.pipeline import Graded
    from grader.grading.run import GradingSession
    from grader.sandbox import warm

    started = time.perf_counter()
    dirs = student_dirs(submissions)
    if not dirs:
        raise InputError(f"{submissions}: no student folders (expected {submissions}/<student>/<notebook>.ipynb)")
    if checks_dir is not None:
        a = spec.load(checks_dir)
        project = checks_dir
    else:
        project = _need_root(root)
        a = _choose_assignment(project, dirs, assignment)
    out_dir = out_dir or submissions.resolve().parent / "grades"
    book = _gradebook(a, project, dirs, out_dir, overrides_csv, extensions_csv, metadata_dir)
    everyone = dirs
    if only:
        unknown = sorted(set(only) - {d.name for d in dirs})
        if unknown:
            raise InputError(f"--only {', '.join(unknown)}: no such student folder in {submissions}/")
        dirs = [d for d in dirs if d.name in only]
        force = True  # a regrade: their logs are made again even if up to date
    written: list[str] = []
    try:
        with interrupts.terminate_raises(), GradingSession(
                root=project, assignment=a, out_dir=out_dir, force=force, data_dir=data_dir,
                console=console, checks_dir=checks_dir, jobs=jobs, scheduler=scheduler,
                allow_unconfined=allow_unconfined, gradebook=book,
                threads=threads or 1, allow_unprotected=allow_unprotected,
                keep_warm=warm.keep_warm_seconds(keep_warm)) as session:
            previous = {d.name: logfile.read_in(out_dir, d.name) for d in dirs}
            with Progress(TextColumn("[bold]grading[/]"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                          console=console, transient=False) as progress:
                task = progress.add_task("grading", total=len(dirs), rate="")
                t0 = time.perf_counter()

                def done(result: Graded) -> None:
                    written.append(result.log.student)
                    progress.advance(task)
                    n = progress.tasks[0].completed
                    progress.update(task, rate=f"{n / max(time.perf_counter() - t0, 1e-9):.1f}/s")

                results = session.grade(dirs, jobs=jobs, on_done=done, present=everyone)
    except (KeyboardInterrupt, interrupts.Terminated) as exc:
        click.echo(f"grader: interrupted: {len(written)} of {len(dirs)} submissions have an "
                   f"up-to-date log in {out_dir}/; run the same command again to grade the rest",
                   err=True)
        sys.exit(interrupts.exit_status(exc))
    feedback.write_pages(out_dir, [r.log for r in results], titles={q.id: q.title for q in a.questions})
    if session.warm_note:
        click.echo(session.warm_note, err=True)
    if session.stale:
        click.echo(f"set aside {len(session.stale)} log(s) of students no longer in "
                   f"{submissions}/ ({', '.join(session.stale)}): "
                   f"{out_dir / logfile.STALE_DIR}/, not counted")
    _summary(results, previous, time.perf_counter() - started, out_dir)


def _gradebook(a: spec.Assignment, project: Path, dirs: list[Path], out_dir: Path,
               overrides_csv: Path | None, extensions_csv: Path | None,
               metadata_dir: Path | None = None) -> Any:
    """The run's gradebook (grader.gradebook), every file checked before grading starts."""
    from grader.gradebook.apply import Gradebook
    from grader.gradebook.deadlines import EXTENSIONS_NAME
    from grader.gradebook.overrides import OVERRIDES_NAME

    def chosen(given: Path | None, default: Path, option: str) -> Path | None:
        if given is not None and not given.is_file():
            raise InputError(f"{option} {given}: no such file")
        return given or (default if default.is_file() else None)

    return Gradebook.load(a, root=project, students={d.name for d in dirs},
                          overrides_csv=chosen(overrides_csv, out_dir / OVERRIDES_NAME,
                                               "--overrides"),
                          extensions_csv=chosen(extensions_csv, out_dir / EXTENSIONS_NAME,
                                                "--extensions"),
                          metadata_dir=metadata_dir)


def _summary(results: list[Graded], previous: dict[str, logfile.SubmissionLog | None],
             seconds: float, out_dir: Path) -> None:
    table = Table(title="grading summary", show_header=True)
    for col in ("graded", "full marks", "with errors", "reused", "time"):
        table.add_column(col)
    full = sum(1 for r in results if r.log.full_marks)  # extra credit counts
    errs = sum(1 for r in results if r.log.errors)
    reused = sum(1 for r in results if r.reused)
    table.add_row(str(len(results)), str(full), str(errs), str(reused), f"{seconds:.1f} s")
    out.print(table)
    click.echo(f"graded {len(results)} submissions: {full} full marks, {errs} with errors, "
               f"{reused} reused, {seconds:.1f} s")
    changed = []
    for r in sorted(results, key=lambda r: r.log.student):
        old = previous.get(r.log.student)
        if old is not None and old.score != r.log.score:
            changed.append(f"{r.log.student}: {old.score} -> {r.log.score}")
    if changed:
        click.echo("scores changed since the last run:")
        for line in changed:
            click.echo(f"  {line}")
    click.echo(f"logs in {out_dir}/, summary in {out_dir / 'summary.csv'}")


@main.command()
@click.argument("notebook", type=click.Path(path_type=Path))
@click.option("--checks", "checks_dir", type=click.Path(path_type=Path), help="Folder with assignment.yaml, probes.py, expected.json.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="Data folder for assignments that need one.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Also write submission_log.json, figures/ and feedback.html here.")
@click.option("--summary", "summary_file", type=click.Path(path_type=Path), help="Append a markdown table of the results to this file (in CI: $GITHUB_STEP_SUMMARY).")
def check(notebook: Path, checks_dir: Path | None, data_dir: Path | None, out_dir: Path | None,
          summary_file: Path | None) -> None:
    """Run the visible checks on one notebook and explain each result.

    Works from the student template alone (it ships what the visible checks need).

    Example: grader check hw1.ipynb

    Example: grader check hw1.ipynb --out feedback/ --summary "$GITHUB_STEP_SUMMARY"
    """
    from grader.grading.selfcheck import self_check

    if not notebook.is_file():
        raise InputError(f"{notebook}: no such notebook")
    result = self_check(notebook=notebook, checks_dir=checks_dir, root=find_root(None),
                        data_dir=data_dir, console=console, out_dir=out_dir)
    _print_report(result)
    if summary_file is not None:
        with summary_file.open("a", encoding="utf-8") as f:
            f.write(feedback.markdown_summary(result, visible_only=True))


def _print_report(log: logfile.SubmissionLog) -> None:
    out.print(f"[bold]{log.assignment}[/]: {log.score:g} / {log.max_score:g} points "
              "(visible checks only)")
    for c in log.checks:
        mark = "[green]PASS[/]" if c.passed else "[red]FAIL[/]"
        out.print(f"{mark} {c.question} {c.name} ({c.score:g}/{c.max_score:g})")
        if not c.passed:
            for line in c.message.splitlines():
                click.echo(f"     {line}")
            if c.hint:
                click.echo(f"     Hint: {c.hint}")
    for e in log.errors:
        click.echo(f"note: {e['message']}")


@main.command()
@click.option("--course", "--root", "root", type=click.Path(path_type=Path), help="Course folder (default: the current one, else the bundled course) holding reference/ and assignments/.")
@click.option("--check-only", is_flag=True, help="Only report whether student_template/ is stale; exit 1 if so.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="Data folder for assignments that need one.")
def build(root: Path | None, check_only: bool, data_dir: Path | None) -> None:
    """Make student_template/ from reference/ (solution markers) and ship the visible checks.

    Example: grader build
    """
    from grader.publish.bundle import build_student_package

    project = _need_root(root)
    stale = build_student_package(root=project, console=console, check_only=check_only,
                                  data_dir=data_dir)
    if check_only and stale:
        console.print("stale: " + ", ".join(stale) + " (run `grader build`)")
        sys.exit(1)


@main.command()
@click.argument("assignment")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Folder to write the bundle into.")
@click.option("--visible-only", is_flag=True, help="Leave the hidden checks out (what students get).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="Data folder for assignments that need one.")
@click.option("--course", "--root", "root", type=click.Path(path_type=Path), help="Course folder (default: the current one, else the bundled course) holding assignments/ and reference/.")
def bundle(assignment: str, out_dir: Path, visible_only: bool, data_dir: Path | None,
           root: Path | None) -> None:
    """Write a checks bundle: the spec, probes and expected values, without reference/.

    `grader run --checks DIR` grades with it on a machine that has no reference solution.

    Example: grader bundle hw1 --out build/hw1-checks
    """
    from grader.grading.plan import limits_for, warm_up_for
    from grader.publish.bundle import checks_bundle
    from grader.sandbox.local import Worker

    project = _need_root(root)
    a = spec.find(project, assignment)
    with Worker(limits=limits_for(a), **warm_up_for([a])) as worker:
        files = checks_bundle(a, root=project, dest=out_dir, executor=worker, data_dir=data_dir,
                              include_hidden=not visible_only)
    for path, content in files.items():
        atomic_write(path, content)
        click.echo(f"wrote {path}")


# -- reading logs: the class, Gradescope ---------------------------------------------------------

@main.command("report")
@click.argument("grades", type=click.Path(path_type=Path))
@click.option("--csv", "csv_file", type=click.Path(path_type=Path), help="Write a gradebook CSV (student, score, max_score, per question) here.")
@click.option("--markdown", is_flag=True, help="Print a markdown table instead (for a CI job summary).")
@click.option("--leaderboard", "leaderboard_file", type=click.Path(path_type=Path), help="Write the leaderboard page (the assignment's measured metrics, ranks only or --pseudonyms) here.")
@click.option("--pseudonyms", type=click.Path(path_type=Path), help="With --leaderboard: a CSV student,pseudonym of names students chose to be shown as.")
@click.option("--canvas", "canvas_file", type=click.Path(path_type=Path), help="Write Canvas's gradebook import CSV here (needs --roster).")
@click.option("--roster", type=click.Path(path_type=Path), help="With --canvas: a CSV student,id[,name,sis_user_id,sis_login_id,section] keying students to Canvas IDs.")
@click.option("--canvas-column", help="With --canvas: the assignment's column as Canvas names it, e.g. 'HW3 (123456)' (default: the assignment's name).")
@click.option("--attempts", "attempts_dir", type=click.Path(path_type=Path), help="Also show each student's check attempts, read from SUBMISSIONS/<student>/ (the attempts log or the upload zip).")
def report_cmd(grades: Path, csv_file: Path | None, markdown: bool,
               leaderboard_file: Path | None = None, pseudonyms: Path | None = None,
               canvas_file: Path | None = None, roster: Path | None = None,
               canvas_column: str | None = None, attempts_dir: Path | None = None) -> None:
    """Class overview of GRADES/<student>/submission_log.json: distribution, failed checks, errors.

    Reads the logs only; nothing is graded again.

    Example: grader report grades/ --csv gradebook.csv
    """
    from grader.reports import class_report

    if csv_file is not None and not csv_file.parent.is_dir():
        raise InputError(f"--csv {csv_file}: folder {csv_file.parent} does not exist")
    ov = class_report.load(grades)
    if markdown:
        click.echo(class_report.markdown(ov), nl=False)
    else:
        class_report.print_overview(ov, out)
    if attempts_dir is not None:
        class_report.print_attempts(class_report.attempts(attempts_dir), out)
    if csv_file is not None:
        try:
            atomic_write_text(csv_file, class_report.gradebook_csv(ov))
        except OSError as exc:
            raise InputError(f"--csv {csv_file}: cannot write it ({exc.strerror or exc})") from None
        console.print(f"wrote {csv_file}", markup=False, highlight=False)
    class_report.write_gradebook_exports(
        ov, console, leaderboard_file=leaderboard_file, pseudonyms=pseudonyms,
        canvas_file=canvas_file, roster=roster, canvas_column=canvas_column)


@main.command("gradescope-results")
@click.argument("log_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Where to write it (default: results.json beside the log).")
def gradescope_results(log_dir: Path, out_file: Path | None) -> None:
    """Convert LOG_DIR/submission_log.json into Gradescope's results.json.

    Example: grader gradescope-results grades/alice --out /autograder/results/results.json
    """
    import json

    from grader.publish import gradescope

    log_path = log_dir / logfile.LOG_NAME if log_dir.is_dir() else log_dir
    log = logfile.read(log_path)
    if log is None:
        raise InputError(f"{log_path}: no readable submission log")
    results = gradescope.results_json(log)
    problems = gradescope.validate_results(results)
    if problems:
        raise InputError(f"{log_path}: results.json would be invalid: {'; '.join(problems)}")
    target = out_file or log_path.parent / "results.json"
    atomic_write_text(target, json.dumps(results, indent=2, allow_nan=False) + "\n")
    click.echo(f"wrote {target}: {results['score']:g} points")


@main.command("gradescope-bundle")
@click.argument("assignment")
@click.option("--out", "out_zip", type=click.Path(path_type=Path), required=True, help="The zip to write (upload it as the Gradescope autograder).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="Data folder to ship, for assignments that need one.")
@click.option("--course", "--root", "root", type=click.Path(path_type=Path), help="Course folder (default: the current one, else the bundled course) holding assignments/ and reference/.")
def gradescope_bundle(assignment: str, out_zip: Path, data_dir: Path | None,
                      root: Path | None) -> None:
    """Build a Gradescope autograder zip: setup.sh, run_autograder, checks, grader, data.

    Example: grader gradescope-bundle hw1 --out autograder.zip
    """
    from grader.publish import gradescope

    project = _need_root(root)
    a = spec.find(project, assignment)
    from grader.publish.gradescope_settings import settings

    content = gradescope.build_zip(a, root=project, data_dir=data_dir)
    atomic_write(out_zip, content)
    click.echo(f"wrote {out_zip} ({len(content) // 1024} KiB)")
    for line in settings(a):  # what Gradescope's defaults would not give it
        click.echo(line)


# -- similarity ----------------------------------------------------------------------------------

@main.command("similarity")
@click.argument("submissions", type=click.Path(path_type=Path))
@click.option("--against", multiple=True, type=click.Path(path_type=Path), help="A corpus folder to compare with (last year's submissions, notebooks from public repositories); repeatable. Pairs inside a corpus are not reported.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Where similarity.csv and similarity.html go (default: similarity/ beside SUBMISSIONS).")
@click.option("--assignment", "-a", help="Assignment name (default: the one whose notebook the submissions hold).")
@click.option("--min-score", type=click.FloatRange(0, min_open=True), help="Report pairs scoring at least this (default: 20, about four lines of code nobody else wrote).")
@click.option("--top", type=click.IntRange(0), default=20, show_default=True, help="Pairs listed on the terminal (the files list all).")
@click.option("--course", "--root", "root", type=click.Path(path_type=Path), help="Course folder (default: the current one, else the bundled course) holding assignments/ and student_template/.")
def similarity_cmd(submissions: Path, against: tuple[Path, ...], out_dir: Path | None,
                   assignment: str | None, min_score: float | None, top: int,
                   root: Path | None) -> None:
    """Rank pairs of submissions whose own code is similar, to each other or to a corpus.

    Compares only what students wrote (the template's code is left out) and never runs it.

    Example: grader similarity submissions/ --against last-year/ --out similarity/
    """
    from rich.text import Text

    from grader.reports import similarity, similarity_page

    dirs = student_dirs(submissions)
    if not dirs:
        raise InputError(f"{submissions}: no student folders (expected {submissions}/<student>/<notebook>.ipynb)")
    project = _need_root(root)
    a = _choose_assignment(project, dirs, assignment)
    result = similarity.compare(
        assignment=a.name, template=similarity.load_template(project, a.notebook),
        question_ids=[q.id for q in a.questions], titles={q.id: q.title for q in a.questions},
        students=dirs, notebook=a.notebook, against=list(against),
        min_score=similarity.MIN_SCORE if min_score is None else min_score)
    table = Table(title=f"similar pairs: {a.name}", show_header=True)
    for col in ("#", "pair", "questions", "shared lines", "score"):
        table.add_column(col, justify="right" if col in {"#", "score"} else "left", overflow="fold")
    for rank, p in enumerate(result.pairs[:top], 1):
        la, lb = p.shared_lines
        table.add_row(str(rank), Text(f"{p.a.name} / {p.b.name}"), Text(p.questions_text),
                      f"{la} / {lb}", f"{p.score:.1f}")
    if result.pairs and top:
        out.print(table)
    if not result.pairs:
        click.echo(f"no pair shares code scoring {result.min_score:g} or more")
    elif len(result.pairs) > top:
        click.echo(f"{len(result.pairs) - top} more pairs in similarity.csv")
    for note in result.skipped:
        click.echo(f"not compared: {note}")
    target = out_dir or submissions.resolve().parent / "similarity"
    csv_path, html_path = similarity_page.write_outputs(result, out_dir=target)
    students = result.students
    click.echo(f"compared {len(students)} submissions ({sum(1 for d in students if d.cells)} with "
               f"code of their own) and {len(result.documents) - len(students)} corpus files: "
               f"{len(result.pairs)} similar pairs; wrote {csv_path} and {html_path}")


# -- is every protection on where grading runs? -------------------------------------------------

@main.command("sandbox")
def sandbox_cmd() -> None:
    """Start one sandbox, print each protection's state, and exit 5 if any is off.

    Run it where grading will run (instructor CI, a grading server) before `grader run`, so a
    machine that cannot confine student code stops the job instead of grading with a warning.

    Example: sudo -E env "PATH=$PATH" grader sandbox
    """
    import shutil
    import tempfile

    from grader.errors import SandboxError
    from grader.execution import Limits
    from grader.sandbox import confine
    from grader.sandbox.local import Worker

    workdir = Path(tempfile.mkdtemp(prefix="grader-sandbox-"))
    try:
        # This command reports what is off rather than refusing to look.
        with Worker(limits=Limits(), allow_unprotected=True) as worker:
            execution = worker.run(workdir=workdir, cells=["x = 1"], probes_source="", requests={})
            protections = {**worker.cgroup_report, **execution.protections}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # Root nested in its own namespaces under Landlock is what `grader run` accepts without
    # the uid drop (confine.unconfined_reason); this check must not refuse what grading allows.
    accepted = {confine.UID_KEY} if (protections.get(confine.UID_KEY, "").startswith("off")
                                     and not confine.unconfined_reason(protections)) else set()
    for name, state in sorted(protections.items()):
        mark = "on " if state.startswith("on") else "ok " if name in accepted else "OFF"
        click.echo(f"{mark} {name}: {state}")
    off = sorted(name for name, state in protections.items()
                 if not state.startswith("on") and name not in accepted)
    if off:
        raise SandboxError(f"{len(off)} sandbox protection(s) off: {', '.join(off)}")
    if accepted:
        click.echo(f"{len(protections) - 1} protections on; {confine.UID_KEY} off but accepted: "
                   "root nested in its own user, pid and mount namespaces under Landlock")
    else:
        click.echo(f"all {len(protections)} protections on")


# -- authoring -----------------------------------------------------------------------------------

@main.command("new")
@click.argument("name")
@click.option("--course", "course_dir", type=click.Path(path_type=Path), help="Course folder to add it to (default: the current folder).")
def new_cmd(name: str, course_dir: Path | None) -> None:
    """Scaffold assignment NAME: its YAML, probes and a reference notebook that build and grade.

    Example: grader new gru_cells && grader build
    """
    from grader.authoring.scaffold import scaffold

    for path in scaffold(course_dir or Path.cwd(), name):
        click.echo(f"wrote {path}")
    click.echo("next: grader build (proves the checks on the reference and the stub)")


@main.command("requirements")
@click.option("--course", "--root", "root", type=click.Path(path_type=Path), help="Course folder (default: the current one, else the bundled course).")
def requirements_cmd(root: Path | None) -> None:
    """Print the pip requirements of the course's assignments, one a line (their YAML's).

    Example: pip install -r <(grader requirements)
    """
    from grader import course

    for line in course.requirements(spec.load_all(_need_root(root))):
        click.echo(line)
