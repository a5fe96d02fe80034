"""The visible checks, run by a student inside their own Jupyter or Colab kernel.

In a cell::

    from grader import notebook as checks
    checks.check("1.A")      # one question
    checks.check_all()       # every question

This calls the same probes (``assignments/<name>/probes.py``, shipped in the checks bundle) on
the same inputs (built by ``grader.spec`` from the YAML), round-trips their answers through
``grader.wire`` and scores them with ``grader.grade``: what ``grader check`` reports, minus the
sandbox. That is acceptable only because the code checked is the student's own; the grader never
runs this way. Nothing here needs the reference, a hidden check or Linux: every import at module
level is portable, and the nbclient path (``main``, the ``grader-check`` command) imports its
dependencies when it runs.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import io
import json
import os
import sys
import time
import types
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path
from typing import Any, Sequence, cast

from grader import spec, wire
from grader.execution import Execution, ProbeAnswer
from grader.grading import score as grading
from grader.logfile import NO_SANDBOX, CheckResult, SubmissionLog
from grader.errors import GraderError, InputError, SpecError

__all__ = ["CheckReport", "check", "check_all", "main"]

# Bundles installed with the student package (``grader build`` puts them in the wheel).
PACKAGE_CHECKS = Path(__file__).resolve().parent / "checks"
_REPORT_MIME = "application/x-grader-checks+json"
# A student's laptop or a CI runner is slower than the grading machine: twice the spec's limits.
PROBE_SLACK = CELL_SLACK = 2.0


@dataclass(frozen=True)
class Bundle:
    """One assignment's visible checks: spec, probes source and expected values."""

    assignment: spec.Assignment
    expected: dict[str, Any]
    needs: frozenset[str]  # names the probes look up in the namespace (``need(ns, "X")``)

    @property
    def name(self) -> str:
        return self.assignment.name


@dataclass
class CheckReport:
    """The results of one ``check`` call; shows itself once, as HTML or as text."""

    assignment: str
    question: str | None
    results: tuple[CheckResult, ...]
    seconds: float = 0.0
    _shown: bool = field(default=False, repr=False, compare=False)

    @property
    def score(self) -> float:
        return round(sum(r.score for r in self.results), 4)

    @property
    def max_score(self) -> float:
        return round(sum(r.max_score for r in self.results), 4)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def _title(self) -> str:
        what = f"{self.assignment} {self.question}" if self.question else self.assignment
        return f"{what}: {self.score:g} / {self.max_score:g} points (visible checks only)"

    def text(self) -> str:
        """The layout of ``grader check``: a score line, PASS/FAIL per check, why, the hint."""
        lines = [self._title()]
        for r in self.results:
            lines.append(f"{'PASS' if r.passed else 'FAIL'} {r.question} {r.name} "
                         f"({r.score:g}/{r.max_score:g})")
            if not r.passed:
                lines += [f"     {line}" for line in r.message.splitlines()]
                if r.hint:
                    lines.append(f"     Hint: {r.hint}")
        return "\n".join(lines)

    def html(self) -> str:
        rows = []
        for r in self.results:
            colour = "#1a7f37" if r.passed else "#cf222e"
            badge = (f'<b style="color:{colour}">{"PASS" if r.passed else "FAIL"}</b> '
                     f"{escape(r.question)} <code>{escape(r.name)}</code> "
                     f"({r.score:g}/{r.max_score:g})")
            detail = ""
            if not r.passed:
                detail = (f'<pre style="margin:.2em 0 .4em 2em;white-space:pre-wrap">'
                          f"{escape(r.message)}</pre>")
                if r.hint:
                    detail += (f'<div style="margin:0 0 .6em 2em"><b>Hint:</b> '
                               f"{escape(r.hint)}</div>")
            rows.append(f"<div>{badge}{detail}</div>")
        return (f'<div class="grader-checks"><p><b>{escape(self._title())}</b></p>'
                + "".join(rows) + "</div>")

    def show(self) -> None:
        """Rich HTML in a Jupyter or Colab front end (with a text fallback), text elsewhere."""
        self._shown = True
        if _in_kernel():
            from IPython.display import display

            display({"text/html": self.html(), "text/plain": self.text()},  # type: ignore[no-untyped-call]
                    raw=True)
        else:
            print(self.text())

    def _ipython_display_(self) -> None:
        # A check() that ends a cell has shown itself already; IPython would show it again.
        if not self._shown:
            self.show()

    def __str__(self) -> str:
        return self.text()

    def as_log_checks(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.results]


def _in_kernel() -> bool:
    """True in a Jupyter/Colab kernel (a front end that renders HTML), not a terminal IPython."""
    shell = _ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"


def _ipython() -> Any:
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython half-installed
        return None
    return get_ipython()


def _namespace(ns: dict[str, Any] | None) -> dict[str, Any]:
    if ns is not None:
        return ns
    shell = _ipython()
    if shell is not None:
        return cast(dict[str, Any], shell.user_ns)
    return sys.modules["__main__"].__dict__


# -- finding the checks ------------------------------------------------------------------------

def load_bundle(directory: Path) -> Bundle:
    """A checks bundle (``checks/<assignment>/``), visible checks only."""
    a = spec.load(directory).visible_only()
    path = directory / "expected.json"
    try:
        expected = {k: wire.decode_value(v) for k, v in json.loads(path.read_bytes()).items()}
    except (OSError, ValueError, wire.WireError) as exc:
        raise SpecError(f"{path}: cannot read expected values ({exc})") from None
    missing = [c.name for c in a.checks if c.request_key not in expected]
    if missing:
        raise SpecError(f"{path}: no expected values for check(s) {', '.join(missing)}")
    return Bundle(a, expected, _needed_names(a.probes_source))


def _needed_names(source: str) -> frozenset[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "need" and len(node.args) == 2
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            names.add(node.args[1].value)
    return frozenset(names)


def _bundle_dirs(checks_dir: Path | None) -> list[Path]:
    if checks_dir is not None:
        if (checks_dir / "assignment.yaml").is_file():
            return [checks_dir]
        found = sorted(p.parent for p in checks_dir.glob("*/assignment.yaml"))
        if not found:
            raise InputError(f"{checks_dir}: no checks bundle there (no assignment.yaml)")
        return found
    # The template's checks/ beside the notebook first: a kernel starts in the notebook's folder,
    # and pip keeps an installed wheel of the same version, so after a template update those are
    # the current ones. Then the installed package's (Colab has no checkout).
    for place in (Path.cwd() / "checks", PACKAGE_CHECKS):
        found = sorted(p.parent for p in place.glob("*/assignment.yaml")
                       if (p.parent / "expected.json").is_file())
        if found:
            return found
    return []


def _notebook_assignment(ns: dict[str, Any]) -> str | None:
    """``metadata.grader.assignment`` of the notebook this kernel serves, where it is known."""
    candidates = [os.environ.get("JPY_SESSION_NAME"), ns.get("__session__"),
                  ns.get("__vsc_ipynb_file__")]
    for c in candidates:
        if isinstance(c, str) and c.endswith(".ipynb") and Path(c).is_file():
            try:
                meta = json.loads(Path(c).read_text(encoding="utf-8")).get("metadata", {})
            except (OSError, ValueError):
                continue
            name = meta.get("grader", {}).get("assignment") if isinstance(meta, dict) else None
            if isinstance(name, str) and name:
                return name
    return None


def find_bundle(*, ns: dict[str, Any], assignment: str | None = None,
                checks_dir: Path | None = None, question: str | None = None) -> Bundle:
    """The assignment named, else the notebook's (its metadata), else the only one that has
    ``question`` and whose definitions are present in ``ns``."""
    dirs = _bundle_dirs(checks_dir)
    if not dirs:
        raise InputError("no visible checks found: install the course's grader-checks package "
                         "(the first cell of the template) or run next to its checks/ folder")
    by_name = {d.name: d for d in dirs}
    wanted = assignment or _notebook_assignment(ns)
    if wanted is not None:
        if wanted in by_name:
            return load_bundle(by_name[wanted])
        if len(dirs) == 1 and checks_dir is not None:
            return load_bundle(dirs[0])
        raise InputError(f"no checks for assignment {wanted!r} (have: {', '.join(sorted(by_name))})")
    bundles = [load_bundle(d) for d in dirs]
    if question is not None:
        bundles = [b for b in bundles if any(q.id == question for q in b.assignment.questions)]
        if not bundles:
            raise InputError(f"no assignment has a question {question!r}")
    if len(bundles) > 1:
        # Generic names ("model") may be defined by either notebook: the most names present wins.
        present = {b.name: sum(n in ns for n in b.needs) for b in bundles}
        best = max(present.values())
        if best > 0:
            bundles = [b for b in bundles if present[b.name] == best]
    if len(bundles) == 1:
        return bundles[0]
    raise InputError("several assignments could be meant ("
                     + ", ".join(b.name for b in bundles) + "); pass assignment=\"<name>\"")


# -- running the checks ------------------------------------------------------------------------

def run_checks(bundle: Bundle, *, ns: dict[str, Any], questions: Sequence[str] | None = None,
               question: str | None = None, probe_seconds: float | None = None) -> CheckReport:
    """Ask the probes (each distinct request once), then score exactly as the grader does."""
    a = bundle.assignment
    known = [q.id for q in a.questions]
    for q in questions or ():
        if q not in known:
            raise InputError(f"{a.name} has no question {q!r} (questions: {', '.join(known)})")
    chosen = tuple(c for c in a.checks if questions is None or c.question in questions)
    started = time.perf_counter()
    module = types.ModuleType("probes")
    # "<probes>", as in the worker, so tracebacks and their filtering read the same.
    exec(compile(a.probes_source, "<probes>", "exec"), module.__dict__)
    answers: dict[str, ProbeAnswer] = {}
    for c in chosen:
        if c.request_key not in answers:
            answers[c.request_key] = _ask(module, ns, c.probe, c.args,
                                          seconds=probe_seconds or PROBE_SLACK * a.probe_seconds)
    results = grading.grade(assignment=replace(a, checks=chosen),
                            execution=Execution((), answers, dict(NO_SANDBOX)),
                            expected=bundle.expected)
    return CheckReport(a.name, question, results, time.perf_counter() - started)


def _ask(module: types.ModuleType, ns: dict[str, Any], probe: str, args: dict[str, Any], *,
         seconds: float) -> ProbeAnswer:
    """One probe call, with the sandbox's conventions: arguments and answer cross ``wire``, and
    a probe that overruns its time limit is stopped and reported as not finished."""
    import _thread
    import threading

    import torch

    from grader import probelib  # imports torch: only once a check actually runs

    sent = {k: wire.decode_value(wire.encode_value(v)) for k, v in args.items()}
    sink = io.StringIO()
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        _thread.interrupt_main()  # a KeyboardInterrupt in this thread: portable, unlike SIGALRM

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    # fork_rng: building a layer draws initial weights; the student's random stream must not move.
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        try:
            timer.start()
            try:
                value = getattr(module, probe)(ns, **sent)
            finally:
                timer.cancel()
            return ProbeAnswer(True, wire.decode_value(wire.encode_value(value)))
        except KeyboardInterrupt:
            if not fired.is_set():
                raise  # the student pressed stop: that is theirs, not a result
            return ProbeAnswer(False, error={"kind": "timeout", "ename": "TimeoutError",
                                         "evalue": "", "traceback": ""})
        except Exception as exc:
            return ProbeAnswer(False, error=probelib.describe_failure(exc))


def check(question: str, *, ns: dict[str, Any] | None = None, assignment: str | None = None,
          checks_dir: str | Path | None = None, quiet: bool = False) -> CheckReport:
    """Run question ``question``'s visible checks on this kernel's definitions and show why."""
    space = _namespace(ns)
    bundle = find_bundle(ns=space, assignment=assignment, question=question,
                         checks_dir=Path(checks_dir) if checks_dir is not None else None)
    report = run_checks(bundle, ns=space, questions=[question], question=question)
    if not quiet:
        report.show()
    return report


def check_all(*, ns: dict[str, Any] | None = None, assignment: str | None = None,
              checks_dir: str | Path | None = None, quiet: bool = False) -> CheckReport:
    """Every question's visible checks."""
    space = _namespace(ns)
    bundle = find_bundle(ns=space, assignment=assignment,
                         checks_dir=Path(checks_dir) if checks_dir is not None else None)
    report = run_checks(bundle, ns=space)
    if not quiet:
        report.show()
    return report


def _emit(*, checks_dir: str, assignment: str, probe_seconds: float) -> None:
    """Run by ``main`` in the kernel after the student's cells: the results, as data."""
    space = _namespace(None)
    bundle = find_bundle(ns=space, assignment=assignment, checks_dir=Path(checks_dir))
    report = run_checks(bundle, ns=space, probe_seconds=probe_seconds)
    from IPython.display import display

    display({_REPORT_MIME: json.dumps({"checks": report.as_log_checks()})},  # type: ignore[no-untyped-call]
            raw=True)


# -- grader-check: the notebook file, run in a kernel ------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """``grader-check NOTEBOOK``: run the notebook in a Jupyter kernel, then its visible checks.

    Example: grader-check rnn_and_grad.ipynb --out grading/ --summary "$GITHUB_STEP_SUMMARY"
    """
    parser = argparse.ArgumentParser(
        prog="grader-check",
        description="Run a notebook in a fresh Jupyter kernel (no sandbox: it is your own code), "
                    "then its visible checks, and explain each result.",
        epilog='Example: grader-check rnn_and_grad.ipynb --out grading/ --summary "$GITHUB_STEP_SUMMARY"')
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--assignment", help="assignment name (default: the notebook's metadata, "
                                             "else its file name)")
    parser.add_argument("--checks", type=Path, help="a checks bundle folder (default: the "
                                                    "installed package's, else ./checks/)")
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
    print(_log_text(log))
    if args.summary is not None:
        from grader.reports import feedback

        with args.summary.open("a", encoding="utf-8") as f:
            f.write(feedback.markdown_summary(log, visible_only=True))
    return 0


def _log_text(log: SubmissionLog) -> str:
    lines = [CheckReport(log.assignment, None, log.checks).text()]
    lines += [f"note: {e['message']}" for e in log.errors]
    return "\n".join(lines)


def check_notebook(*, notebook: Path, assignment: str | None = None,
                   checks_dir: Path | None = None, out_dir: Path | None = None,
                   timeout: float | None = None, probe_timeout: float | None = None
                   ) -> SubmissionLog:
    """Execute ``notebook`` in a kernel started in its folder, then ask the visible checks there.

    Returns a log shaped like ``grader check``'s (checks, errors, cells with figures).
    """
    if not notebook.is_file():
        raise InputError(f"{notebook}: no such notebook")
    import nbformat

    started = time.perf_counter()
    name = assignment
    raw = notebook.read_bytes()
    nb: Any = None
    problem = ""
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    except Exception as exc:  # nbformat raises several unrelated types for bad input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        problem = f"{notebook}: not a valid notebook ({first})"
    if name is None and nb is not None:
        meta = nb.metadata.get("grader", {})
        name = str(meta.get("assignment")) if meta.get("assignment") else None
    dirs = _bundle_dirs(checks_dir)
    by_name = {d.name: d for d in dirs}
    name = name or notebook.stem
    if name not in by_name and not (checks_dir is not None and len(dirs) == 1):
        raise SpecError(f"{notebook}: no checks for assignment {name!r} "
                        f"(have: {', '.join(sorted(by_name)) or 'none'}; pass --checks)")
    bundle_dir = by_name.get(name, dirs[0])
    bundle = load_bundle(bundle_dir)
    a = bundle.assignment
    errors: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    checks: list[dict[str, Any]]
    if nb is None:
        errors.append({"kind": "invalid_notebook", "message": problem})
        checks = [r.as_dict() for r in grading.grade(assignment=a, execution=None,
                                                     expected=bundle.expected,
                                                     unavailable=problem)]
    else:
        limit = timeout if timeout is not None else CELL_SLACK * a.cell_seconds
        per_probe = probe_timeout if probe_timeout is not None else PROBE_SLACK * a.probe_seconds
        checks, errors, cells = _run_in_kernel(nb, notebook.resolve().parent, bundle_dir.resolve(),
                                               bundle, limit, per_probe, out_dir)
    from grader import logfile

    log = logfile.SubmissionLog(
        assignment=a.name, student=notebook.resolve().parent.name, notebook=notebook.name,
        notebook_sha256=hashlib.sha256(raw).hexdigest(),
        checks=tuple(logfile.CheckResult.from_dict(c) for c in checks), errors=tuple(errors),
        cells=tuple(cells), timings={"total_seconds": time.perf_counter() - started},
        protections=dict(logfile.NO_SANDBOX))
    if out_dir is not None:
        from grader.reports import feedback

        logfile.write(out_dir / logfile.LOG_NAME, log)
        feedback.write_page(log, out_dir, titles={q.id: q.title for q in a.questions},
                            visible_only=True)
    return log


def _run_in_kernel(nb: Any, workdir: Path, bundle_dir: Path, bundle: Bundle, limit: float,
                   per_probe: float, out_dir: Path | None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    import base64

    import nbformat
    from nbclient import NotebookClient

    a = bundle.assignment
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    ask = nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
        "import grader.student.checks as _grader_notebook\n"
        f"_grader_notebook._emit(checks_dir={str(bundle_dir)!r}, assignment={a.name!r}, "
        f"probe_seconds={per_probe!r})\n"
        "del _grader_notebook\n")
    run = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    run.metadata = nb.metadata
    run.cells = [*nb.cells, ask]
    # The kernel must be this interpreter's (it has the package): first on PATH, where the
    # "python3" kernel spec's bare `python` is looked up.
    env = {**os.environ,
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    client = NotebookClient(run, timeout=max(1, int(limit)), kernel_name="python3",
                            allow_errors=True, interrupt_on_timeout=True,
                            resources={"metadata": {"path": str(workdir)}}, env=env)
    errors: list[dict[str, Any]] = []
    stopped, stopped_at = "", -1
    try:
        with client.setup_kernel():
            for position, cell in enumerate(run.cells):
                if cell is ask:  # each probe has its own limit; the cell needs all of theirs
                    client.timeout = int(limit + per_probe * len(a.checks)) + 10
                try:
                    client.execute_cell(cell, position)
                except CellTimeoutError:
                    stopped, stopped_at = "timed out and could not be interrupted", position
                    break
                except DeadKernelError:
                    stopped, stopped_at = "stopped the kernel (it died)", position
                    break
    except (RuntimeError, OSError) as exc:
        raise GraderError(f"could not start a Jupyter kernel: {exc}") from None
    from grader.submission import cell_label, code_cell_number

    sources = tuple(c.source if c.cell_type == "code" else None for c in nb.cells)
    cells: list[dict[str, Any]] = []
    for index, cell in enumerate(run.cells[:-1]):
        if cell.cell_type != "code":
            continue
        number = code_cell_number(sources, index)
        status, figures, stdout = "ok", list[str](), list[str]()
        if cell.get("execution_count") is None and not cell.get("outputs"):
            status = "not_run"
        for k, output in enumerate(cell.get("outputs", []), start=1):
            if output.output_type == "stream":
                stdout.append(str(output.text))
            elif output.output_type == "error":
                timed_out = output.ename == "KeyboardInterrupt"
                status = "timeout" if timed_out else "error"
                verb = "timed out" if timed_out else f"raised {output.ename}"
                evalue = "cell exceeded its time limit" if timed_out else output.evalue
                errors.append({"kind": f"cell_{status}", "cell": number,
                               "message": f"{cell_label(sources, index)} {verb}: {evalue}"})
            elif "image/png" in output.get("data", {}):
                figure = f"figures/cell-{number:02d}-{len(figures) + 1}.png"
                if out_dir is not None:
                    from grader.files import atomic_write

                    atomic_write(out_dir / figure, base64.b64decode(output.data["image/png"]))
                figures.append(figure)
        cells.append({"cell": number, "status": status, "figures": figures,
                      "stdout": "".join(stdout)[-4000:]})
    if stopped:
        where = (cell_label(sources, stopped_at) if stopped_at < len(sources)
                 else "the cell running the checks")
        stopped = f"{where} {stopped}"
        errors.append({"kind": "stopped", "message": stopped})
    checks = _answers(run.cells[-1])
    if checks is None:
        why = _cell_error(run.cells[-1]) or stopped or "the checks did not run"
        checks = [r.as_dict() for r in grading.grade(
            assignment=a, execution=None, expected=bundle.expected,
            unavailable=f"the notebook stopped before this check could run ({why})")]
    return checks, errors, cells


def _cell_error(cell: Any) -> str:
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            return f"{output.ename}: {output.evalue}"
    return ""


def _answers(cell: Any) -> list[dict[str, Any]] | None:
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if _REPORT_MIME in data:
            raw = data[_REPORT_MIME]
            parsed = json.loads(raw) if isinstance(raw, str) else raw
            return list(parsed["checks"])
    return None


if __name__ == "__main__":
    sys.exit(main())
