"""The visible checks, run by a student inside their own Jupyter or Colab kernel.

In a cell::

    from grader import notebook as checks
    checks.check("Q1")       # one question
    checks.check_all()       # every question

This asks the same probes (the checks bundle's ``probes.py``) with the same requests
(``grader.grading.plan.requests_for``) under the sandbox's conventions (arguments and answers
cross ``grader.wire``, each probe has a time limit), and turns the answers into a log with
``grader.grading.pipeline.make_log``, as ``grader check`` and ``grader-check`` do: the same
code gives the same checks, scores and messages whichever way it is checked. ``CheckReport.log``
is that ``SubmissionLog``.

There is no sandbox here: acceptable only because the code checked is the student's own. The
grader never grades this way. Nothing here needs the reference, a hidden check or Linux.
``ask`` also answers the probes inside ``grader-check``'s kernel (``grader.student.kernel``).
"""

from __future__ import annotations

import ast
import contextlib
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
from grader.errors import InputError, SpecError
from grader.execution import Execution, ProbeAnswer, Requests
from grader.grading.pipeline import make_log
from grader.grading.plan import requests_for
from grader.logfile import NO_SANDBOX, CheckResult, SubmissionLog

__all__ = ["CheckReport", "check", "check_all"]

# Bundles installed with the student package (``grader build`` puts them in the wheel).
PACKAGE_CHECKS = Path(__file__).resolve().parent.parent / "checks"
# A student's laptop or a CI runner is slower than the grading machine: twice the spec's limits.
PROBE_SLACK = CELL_SLACK = 2.0


@dataclass(frozen=True)
class Bundle:
    """One assignment's visible checks: spec, probes source and expected values."""

    assignment: spec.Assignment
    expected: dict[str, Any]
    needs: frozenset[str]  # what the probes look up in the kernel (``need(ns, "X")``)

    @property
    def name(self) -> str:
        return self.assignment.name


@dataclass
class CheckReport:
    """The log of one ``check`` call; shows itself once, as HTML or as text."""

    log: SubmissionLog
    question: str | None = None
    _shown: bool = field(default=False, repr=False, compare=False)

    @property
    def assignment(self) -> str:
        return self.log.assignment

    @property
    def results(self) -> tuple[CheckResult, ...]:
        return self.log.checks

    @property
    def score(self) -> float:
        return self.log.score

    @property
    def max_score(self) -> float:
        """As in the log: an optional check's points are extra credit, outside the maximum."""
        return self.log.max_score

    @property
    def seconds(self) -> float:
        return self.log.timings.get("total_seconds", 0.0)

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


def _user_ns(ns: dict[str, Any] | None) -> dict[str, Any]:
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
    return Bundle(a, expected, _needed(a.probes_source))


def _needed(source: str) -> frozenset[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "need" and len(node.args) == 2
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            found.add(node.args[1].value)
    return frozenset(found)


def bundle_dirs(checks_dir: Path | None) -> list[Path]:
    """The bundles in ``checks_dir`` (a bundle or a folder of them), else the default places."""
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


def bundle_named(name: str, checks_dir: Path | None, *, what: str) -> Bundle:
    """The bundle of assignment ``name``; a ``checks_dir`` holding one bundle is used whatever
    its name. ``what`` (the notebook) starts the error message."""
    dirs = bundle_dirs(checks_dir)
    by_name = {d.name: d for d in dirs}
    if name not in by_name and not (checks_dir is not None and len(dirs) == 1):
        raise SpecError(f"{what}: no checks for assignment {name!r} "
                        f"(have: {', '.join(sorted(by_name)) or 'none'}; pass --checks)")
    return load_bundle(by_name.get(name, dirs[0]))


def _notebook_file(ns: dict[str, Any]) -> Path | None:
    """The notebook file this kernel serves, where the front end says (Jupyter, VS Code)."""
    for c in (os.environ.get("JPY_SESSION_NAME"), ns.get("__session__"),
              ns.get("__vsc_ipynb_file__")):
        if isinstance(c, str) and c.endswith(".ipynb") and Path(c).is_file():
            return Path(c)
    return None


def _notebook_assignment(ns: dict[str, Any]) -> str | None:
    """``metadata.grader.assignment`` of the notebook this kernel serves, where it is known."""
    path = _notebook_file(ns)
    if path is None:
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError, AttributeError):
        return None
    name = meta.get("grader", {}).get("assignment") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and name else None


def find_bundle(*, ns: dict[str, Any], assignment: str | None = None,
                checks_dir: Path | None = None, question: str | None = None) -> Bundle:
    """The assignment named, else the notebook's (its metadata), else the only one that has
    ``question`` and whose definitions are present in ``ns``."""
    dirs = bundle_dirs(checks_dir)
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
        raise InputError(f"no checks for assignment {wanted!r} "
                         f"(have: {', '.join(sorted(by_name))})")
    bundles = [load_bundle(d) for d in dirs]
    if question is not None:
        bundles = [b for b in bundles if any(q.id == question for q in b.assignment.questions)]
        if not bundles:
            raise InputError(f"no assignment has a question {question!r}")
    if len(bundles) > 1:
        # Generic definitions ("model") may be in either notebook: the most of them present wins.
        present = {b.name: sum(n in ns for n in b.needs) for b in bundles}
        best = max(present.values())
        if best > 0:
            bundles = [b for b in bundles if present[b.name] == best]
    if len(bundles) == 1:
        return bundles[0]
    raise InputError("several assignments could be meant ("
                     + ", ".join(b.name for b in bundles) + "); pass assignment=\"<name>\"")


# -- asking the probes -------------------------------------------------------------------------

def ask(probes_source: str, requests: Requests, *, ns: dict[str, Any], seconds: float
        ) -> dict[str, ProbeAnswer]:
    """Every request answered on ``ns`` by the probes in ``probes_source``, one at a time."""
    from grader import probelib  # imports torch: only once a check actually runs

    module = types.ModuleType("probes")
    # "<probes>", as in the sandbox's runner, so tracebacks and their filtering read the same.
    exec(compile(probes_source, "<probes>", "exec"), module.__dict__)
    stubs = probelib.declared_stub_messages(module)
    return {key: _ask(module, ns, probe, args, seconds=seconds, stubs=stubs)
            for key, (probe, args) in requests.items()}


def _ask(module: types.ModuleType, ns: dict[str, Any], probe: str, args: dict[str, Any], *,
         seconds: float, stubs: tuple[str, ...]) -> ProbeAnswer:
    """One probe call, with the sandbox's conventions: arguments and answer cross ``wire``, a
    failure is described as the runner describes it, and a probe that overruns its time limit
    is stopped and reported as not finished."""
    import _thread
    import threading

    import torch

    from grader import probelib

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
            return ProbeAnswer(False, error=probelib.describe_failure(exc, stub_messages=stubs))


# -- the checks --------------------------------------------------------------------------------

def run_checks(bundle: Bundle, *, ns: dict[str, Any], questions: Sequence[str] | None = None,
               question: str | None = None, probe_seconds: float | None = None) -> CheckReport:
    """Ask the probes on the kernel's live definitions, then log exactly as the grader does.

    The Execution has answers and no cells: this kernel ran the cells, in whatever order the
    student chose, and only what they defined is known. A whole-notebook check (``questions``
    None) also asks the assignment's records, as ``grader check`` does.
    """
    a = bundle.assignment
    known = [q.id for q in a.questions]
    for q in questions or ():
        if q not in known:
            raise InputError(f"{a.name} has no question {q!r} (questions: {', '.join(known)})")
    scope = a if questions is None else replace(
        a, checks=tuple(c for c in a.checks if c.question in questions), records=())
    started = time.perf_counter()
    answers = ask(a.probes_source, requests_for(scope), ns=ns,
                  seconds=probe_seconds or PROBE_SLACK * a.probe_seconds)
    execution = Execution((), answers, dict(NO_SANDBOX), seconds=time.perf_counter() - started)
    log = make_log(scope, student=_student(ns), notebook_name=a.notebook, notebook=None,
                   execution=execution, expected=bundle.expected, started=started)
    return CheckReport(log, question)


def _student(ns: dict[str, Any]) -> str:
    """As the other paths name a student: the notebook's folder (the kernel's, if unknown)."""
    path = _notebook_file(ns)
    return (path.resolve().parent if path is not None else Path.cwd()).name


def check(question: str, *, ns: dict[str, Any] | None = None, assignment: str | None = None,
          checks_dir: str | Path | None = None, quiet: bool = False) -> CheckReport:
    """Run question ``question``'s visible checks on this kernel's definitions and show why."""
    space = _user_ns(ns)
    bundle = find_bundle(ns=space, assignment=assignment, question=question,
                         checks_dir=Path(checks_dir) if checks_dir is not None else None)
    report = run_checks(bundle, ns=space, questions=[question], question=question)
    if not quiet:
        report.show()
    return report


def check_all(*, ns: dict[str, Any] | None = None, assignment: str | None = None,
              checks_dir: str | Path | None = None, quiet: bool = False) -> CheckReport:
    """Every question's visible checks; ``.log`` is the notebook's whole log."""
    space = _user_ns(ns)
    bundle = find_bundle(ns=space, assignment=assignment,
                         checks_dir=Path(checks_dir) if checks_dir is not None else None)
    report = run_checks(bundle, ns=space)
    if not quiet:
        report.show()
    return report
