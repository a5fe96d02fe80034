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
from grader.execution import GRADING_ENV, Execution, ProbeAnswer, Requests
from grader.grading.pipeline import make_log
from grader.grading.plan import requests_for
from grader.grading.score import NOT_YET, ungraded_reason
from grader.logfile import NO_SANDBOX, CheckResult, SubmissionLog

__all__ = ["CheckReport", "check", "check_all", "expected", "export", "fetch_data", "inputs",
           "reproduce"]

# Bundles installed with the student package (``grader build`` puts them in the wheel).
PACKAGE_CHECKS = Path(__file__).resolve().parent.parent / "checks"
# A student's laptop or a CI runner is slower than the grading machine: twice the spec's limits.
PROBE_SLACK = CELL_SLACK = 2.0


def grading() -> bool:
    """Is a grader running this notebook (the sandbox's runner, grader-check's kernel)? Then the
    template's check, submit and setup cells do nothing: a student's copy is graded unchanged."""
    return os.environ.get(GRADING_ENV) == "skip"


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

    why_no_points: str = ""  # score.ungraded_reason, for a question checked alone

    def _title(self) -> str:
        what = f"{self.assignment} {self.question}" if self.question else self.assignment
        title = f"{what}: {self.score:g} / {self.max_score:g} points (visible checks only)"
        return f"{title}: {self.why_no_points}" if self.why_no_points and not self.results else title

    def reproduce(self, result: CheckResult) -> str:
        """A few lines that re-run a failed visible check in the notebook, where its error is
        a real traceback into the student's code (``checks.reproduce``)."""
        return (f"got = checks.reproduce({result.name!r})  # the inputs: checks.inputs({result.name!r})\n"
                f"want = checks.expected({result.name!r})")

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
                if r.visibility == "visible" and not r.message.startswith(NOT_YET):
                    lines.append("     Reproduce it in a cell:")
                    lines += [f"         {line}" for line in self.reproduce(r).splitlines()]
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
                if r.visibility == "visible" and not r.message.startswith(NOT_YET):
                    detail += ('<div style="margin:0 0 .6em 2em">Reproduce it in a cell:<pre>'
                               f"{escape(self.reproduce(r))}</pre></div>")
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


def embedded_bundle(nb: Any) -> Path | None:
    """The visible checks a notebook carries in ``metadata.grader.checks`` (``grader build``
    puts them there), written once to a temporary folder; None if it has none. Only the student's
    own checks read them: the grader never does."""
    meta = nb.get("metadata", {}).get("grader", {}) if isinstance(nb, dict) else {}
    files = meta.get("checks") if isinstance(meta, dict) else None
    name = meta.get("assignment") if isinstance(meta, dict) else None
    if not isinstance(files, dict) or not isinstance(name, str) or not name.isidentifier():
        return None
    files = {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)
             and k and "/" not in k and "\\" not in k and not k.startswith(".")}
    if "assignment.yaml" not in files or "expected.json" not in files:
        return None
    import hashlib
    import tempfile

    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"grader-checks-{digest}" / name
    if not (folder / "expected.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for filename, text in files.items():
            (folder / filename).write_text(text, encoding="utf-8")
    return folder


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def bundle_named(name: str, checks_dir: Path | None, *, what: str,
                 notebook: Path | None = None) -> Bundle:
    """The bundle of assignment ``name``; a ``checks_dir`` holding one bundle is used whatever
    its name; else the one ``notebook`` carries. ``what`` (the notebook) starts the error."""
    dirs = bundle_dirs(checks_dir)
    if checks_dir is None and notebook is not None and name not in {d.name for d in dirs}:
        embedded = embedded_bundle(_read_json(notebook))
        if embedded is not None:
            dirs = [embedded, *dirs]
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


def _colab_notebook() -> Any:
    """The notebook as Colab holds it (not on disk there), else None."""
    if "google.colab" not in sys.modules:
        return None
    try:
        from google.colab import _message

        return _message.blocking_request("get_ipynb", timeout_sec=30)["ipynb"]
    except Exception:  # any failure: no notebook known
        return None


def _notebook_json(ns: dict[str, Any]) -> Any:
    """The notebook this kernel serves: its file (Jupyter, VS Code), Colab's copy, else the
    only notebook in the working folder that carries checks."""
    path = _notebook_file(ns)
    if path is not None:
        return _read_json(path)
    colab = _colab_notebook()
    if colab is not None:
        return colab
    carrying = [nb for nb in (_read_json(p) for p in sorted(Path.cwd().glob("*.ipynb")))
                if embedded_bundle_meta(nb)]
    return carrying[0] if len(carrying) == 1 else None


def embedded_bundle_meta(nb: Any) -> bool:
    meta = nb.get("metadata", {}).get("grader", {}) if isinstance(nb, dict) else {}
    return isinstance(meta, dict) and isinstance(meta.get("checks"), dict)


def _notebook_assignment(ns: dict[str, Any]) -> str | None:
    """``metadata.grader.assignment`` of the notebook this kernel serves, where it is known."""
    nb = _notebook_json(ns)
    meta = nb.get("metadata", {}) if isinstance(nb, dict) else {}
    name = meta.get("grader", {}).get("assignment") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and name else None


def find_bundle(*, ns: dict[str, Any], assignment: str | None = None,
                checks_dir: Path | None = None, question: str | None = None) -> Bundle:
    """The assignment named, else the notebook's (its metadata), else the only one that has
    ``question`` and whose definitions are present in ``ns``."""
    dirs = bundle_dirs(checks_dir)
    if checks_dir is None:  # the notebook's own, unless a checks/ folder has this assignment
        wanted_name = assignment or _notebook_assignment(ns)
        if wanted_name is None or wanted_name not in {d.name for d in dirs}:
            embedded = embedded_bundle(_notebook_json(ns))
            if embedded is not None and (wanted_name is None or embedded.name == wanted_name):
                dirs = [embedded]
    if not dirs:
        raise InputError("no visible checks found: open the notebook the course gave you (it "
                         "carries them), or run next to the template's checks/ folder")
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


def _code_sha256(bundle: Bundle, ns: dict[str, Any]) -> str:
    """A hash of the code the probes call (their ``need`` names), as defined in the kernel now."""
    import hashlib
    import inspect

    h = hashlib.sha256()
    for name in sorted(bundle.needs):
        value = ns.get(name)
        if value is None:
            continue
        try:
            text = inspect.getsource(value)
        except (TypeError, OSError):
            text = repr(type(value))
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()


def _folder(ns: dict[str, Any]) -> Path:
    path = _notebook_file(ns)
    return path.resolve().parent if path is not None else Path.cwd()


# The last whole-notebook report per assignment, for export().
_LAST: dict[str, tuple[CheckReport, float]] = {}


def _checked(bundle: Bundle, space: dict[str, Any], report: CheckReport, question: str) -> None:
    """The attempt logged beside the notebook, where there is one (Colab: its working folder)."""
    from grader.student import submit

    folder = _folder(space)
    if (_notebook_file(space) is None and not (folder / bundle.assignment.notebook).is_file()
            and "google.colab" not in sys.modules):
        return  # a kernel away from its notebook (a script, a test): nowhere that is the student's
    submit.record_attempt(folder, assignment=bundle.name, question=question,
                          score=report.score, max_score=report.max_score,
                          code_sha256=_code_sha256(bundle, space))


def check(question: str, *, ns: dict[str, Any] | None = None, assignment: str | None = None,
          checks_dir: str | Path | None = None, quiet: bool = False) -> CheckReport | None:
    """Run question ``question``'s visible checks on this kernel's definitions and show why.
    Nothing happens while a grader runs the notebook (``grading``)."""
    if grading():
        return None
    space = _user_ns(ns)
    bundle = find_bundle(ns=space, assignment=assignment, question=question,
                         checks_dir=Path(checks_dir) if checks_dir is not None else None)
    report = run_checks(bundle, ns=space, questions=[question], question=question)
    report.why_no_points = ungraded_reason(bundle.assignment, question, visible_only=True)
    _checked(bundle, space, report, question)
    if not quiet:
        report.show()
    return report


def check_all(*, ns: dict[str, Any] | None = None, assignment: str | None = None,
              checks_dir: str | Path | None = None, quiet: bool = False) -> CheckReport | None:
    """Every question's visible checks; ``.log`` is the notebook's whole log."""
    if grading():
        return None
    space = _user_ns(ns)
    bundle = find_bundle(ns=space, assignment=assignment,
                         checks_dir=Path(checks_dir) if checks_dir is not None else None)
    report = run_checks(bundle, ns=space)
    _checked(bundle, space, report, "all")
    _LAST[bundle.name] = (report, time.time())
    if not quiet:
        report.show()
    return report


def export(*, ns: dict[str, Any] | None = None, assignment: str | None = None,
           checks_dir: str | Path | None = None) -> Path | None:
    """Write the file to upload (the notebook, the visible-check log, the attempts log) beside
    the notebook and say in one line what to upload where; warn when the notebook on disk is
    older than the last check (unsaved work)."""
    if grading():
        return None
    from grader.student import submit

    space = _user_ns(ns)
    bundle = find_bundle(ns=space, assignment=assignment,
                         checks_dir=Path(checks_dir) if checks_dir is not None else None)
    if bundle.name not in _LAST:
        check_all(ns=space, assignment=bundle.name, checks_dir=checks_dir, quiet=True)
    report, checked_at = _LAST[bundle.name]
    folder = _folder(space)
    path = _notebook_file(space) or folder / bundle.assignment.notebook
    if path.is_file():
        content = path.read_bytes()
        if path.stat().st_mtime < checked_at - 1:
            print(f"warning: {path.name} on disk is older than your last check: save the notebook "
                  "(File > Save), then run this cell again, or the upload misses your latest work")
    else:
        colab = _colab_notebook()
        if colab is None:
            raise InputError(f"{path}: notebook file not found; save it there (or pass ns= of "
                             "the notebook's kernel), then run export() again")
        content = json.dumps(colab, indent=1).encode()
    upload = submit.write_upload(folder, assignment=bundle.name,
                                 notebook_name=bundle.assignment.notebook, notebook=content,
                                 log=report.log)
    print(f"Upload {upload} to the course's submission page for {bundle.name}; it holds your "
          f"notebook, its visible-check log ({report.score:g} / {report.max_score:g} points) and "
          "your check attempts.")
    return upload


def fetch_data(url: str, dest: str, files: dict[str, str]) -> Path | None:
    """The setup cell's data: kept if present, else downloaded and checked file by file."""
    if grading():
        return None
    from grader.student import submit

    return submit.fetch_data(url, dest, files)


def _one_check(name: str, ns: dict[str, Any], assignment: str | None,
               checks_dir: str | Path | None = None) -> tuple[Bundle, Any]:
    bundle = find_bundle(ns=ns, assignment=assignment,
                         checks_dir=Path(checks_dir) if checks_dir is not None else None)
    found = [c for c in bundle.assignment.checks if c.name == name]
    if not found:
        raise InputError(f"{bundle.name} has no visible check {name!r} (checks: "
                         + ", ".join(c.name for c in bundle.assignment.checks) + ")")
    return bundle, found[0]


def inputs(name: str, *, ns: dict[str, Any] | None = None, assignment: str | None = None,
           checks_dir: str | Path | None = None) -> dict[str, Any]:
    """The arguments visible check ``name`` gives its probe (arrays as numpy arrays)."""
    space = _user_ns(ns)
    bundle, c = _one_check(name, space, assignment, checks_dir)
    [(_, args)] = requests_for(replace(bundle.assignment, checks=(c,), records=())).values()
    return {k: wire.decode_value(wire.encode_value(v)) for k, v in args.items()}


def expected(name: str, *, ns: dict[str, Any] | None = None, assignment: str | None = None,
             checks_dir: str | Path | None = None) -> Any:
    """What visible check ``name`` expects (the reference's outputs on its inputs)."""
    bundle, c = _one_check(name, _user_ns(ns), assignment, checks_dir)
    return bundle.expected[c.request_key]


def reproduce(name: str, *, ns: dict[str, Any] | None = None, assignment: str | None = None,
              checks_dir: str | Path | None = None) -> Any:
    """Run visible check ``name``'s probe on this kernel's code, errors not caught: a failure
    is a real traceback into your code (``%debug`` works on it)."""
    space = _user_ns(ns)
    bundle, c = _one_check(name, space, assignment, checks_dir)
    module = types.ModuleType("probes")
    exec(compile(bundle.assignment.probes_source, "<probes>", "exec"), module.__dict__)
    args = inputs(name, ns=space, assignment=bundle.name, checks_dir=checks_dir)
    return getattr(module, c.probe)(space, **args)
