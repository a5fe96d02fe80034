"""Start-up, before and after, side by side: wall time of `grader run` end to end, as a user runs it.

Runs the CLI of two checkouts as subprocesses, each with its own interpreter (``--before``:
the checkout before issue 17, default /tmp/before with its .venv; after: this checkout), on
the same inputs, interleaved rep by rep so both see the same machine:

(a) one submission, expected values uncached: a fresh cache folder and a fresh --out;
(b) one submission, expected values cached, a fresh --out. After caches expected values in
    $GRADER_CACHE_DIR (here: a folder of the bench's, warmed once); before cached them in
    --out/.cache, so its "fresh --out" gets a copy of that folder and nothing else;
(c) N submissions (default 30: the examples/submissions variants but the hanging one, cycled,
    each made unique by a markdown cell), expected values cached, a fresh --out;
(d), (e) as (b) and (c), after only, with ``--keep-warm``: the worker comes from the listener
    an earlier run left (sandbox.warm), so the run skips the worker's seconds of imports. The
    listeners are ended when the bench ends.

Each figure is the median of --reps runs (min and max beside it). With ``--nbgrader VENV`` the
same N notebooks are graded by ``nbgrader autograde`` (nbgrader installed in VENV, with torch,
matplotlib and numpy), each notebook carrying one autograded test cell that asks the same
probes and compares with the same expected values: the same work, one fresh kernel per notebook.

    .venv/bin/python bench/startup.py [--reps 3] [--n 30] [--nbgrader /tmp/nbgvenv]

Needs no network. Every run has a timeout (--timeout); the temporary folders are removed at
the end, whatever happened. On a shared machine (other jobs on the same cores), trust the
ratios measured side by side more than the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402

NOTEBOOK = "rnn_and_grad.ipynb"
ONE = "fails_1b_wrong_head"  # one submission: runs every cell and every check, no hang
HANGS = {"hangs_in_1c"}  # its cell runs to the CPU limit: a timeout, not a start-up, measure
WARM = ("--keep-warm", "120")  # (d), (e): the listener outlives each run by two minutes
BEFORE_CACHE = ".cache"  # where the checkout before issue 17 kept expected values (in --out)


class Tree:
    def __init__(self, name: str, root: Path, python: Path) -> None:
        self.name, self.root, self.python = name, root, python
        self.grader = python.parent / "grader"

    def available(self) -> str:
        for path in (self.root / "assignments", self.python, self.grader):
            if not path.exists():
                return f"{path} not found"
        return ""


def make_submissions(folder: Path, n: int) -> list[str]:
    """``n`` student folders cycling through the example variants; each notebook unique."""
    variants = sorted(p.name for p in (ROOT / "examples" / "submissions").iterdir()
                      if (p / NOTEBOOK).is_file() and p.name not in HANGS)
    students = []
    for i in range(n):
        kind = variants[i % len(variants)]
        nb = nbformat.read(str(ROOT / "examples" / "submissions" / kind / NOTEBOOK), as_version=4)  # type: ignore[no-untyped-call]
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"Submission {i:03d} ({kind})"))  # type: ignore[no-untyped-call]
        student = f"s{i:03d}_{kind}"
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, str(folder / student / NOTEBOOK))  # type: ignore[no-untyped-call]
        students.append(student)
    return students


def cached_runs(cache: Path) -> set[str]:
    return {p.name for p in (cache / "expected").glob("*.json")}


def grade_cached(tree: Tree, subs: Path, out: Path, cache: Path, *, timeout: float,
                 extra: tuple[str, ...] = (),
                 seed_before_cache: Path | None = None) -> float:
    """As ``grade``, for a run that must find its expected values cached. A checkout edited
    while the bench runs changes the cache key (it covers the grader's code): such a run
    computed them instead, so it is run again, now cached."""
    for _ in range(3):
        known = cached_runs(cache)
        wall = grade(tree, subs, out, cache, timeout=timeout, seed_before_cache=seed_before_cache,
                     extra=extra)
        if tree.name == "before" or cached_runs(cache) == known:
            return wall
        print(f"  ({tree.name}: the expected values were not cached, the checkout changed "
              "under the bench; measuring again)", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    raise RuntimeError(f"{tree.name}: the checkout keeps changing; no cached run measured")


def grade(tree: Tree, subs: Path, out: Path, cache: Path, *, timeout: float,
          seed_before_cache: Path | None = None, imports: list[str] | None = None,
          extra: tuple[str, ...] = ()) -> float:
    """Wall seconds of ``grader run SUBS --out OUT`` in ``tree``; raises if it failed.

    With ``imports`` (a list), it runs under ``python -X importtime`` and the list receives the
    top-level packages the grader's own process imported (not the worker's: its stderr is
    the grader's to read)."""
    if seed_before_cache is not None and seed_before_cache.is_dir():
        shutil.copytree(seed_before_cache, out / BEFORE_CACHE)
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_ROOT", "PYTHONPATH")}
    env["GRADER_CACHE_DIR"] = str(cache)
    command = [str(tree.grader), "run", str(subs), "--out", str(out), "-j", "2", *extra]
    if imports is not None:
        command = [str(tree.python), "-X", "importtime", *command]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=tree.root, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    if imports is not None:
        imports.extend(sorted({m.group(1) for m in re.finditer(
            r"^import time:\s+\d+ \|\s+\d+ \| (\S+)$", proc.stderr, re.M)}))
    if proc.returncode != 0:
        raise RuntimeError(f"{tree.name}: grader run exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-500:]}")
    wanted = {d.name for d in subs.iterdir() if d.is_dir()}
    have = {d.name for d in out.iterdir() if (d / "submission_log.json").is_file()}
    if have != wanted:
        raise RuntimeError(f"{tree.name}: {len(have)} logs for {len(wanted)} submissions")
    return wall


def fmt(times: list[float]) -> str:
    if not times:
        return "not measured"
    return (f"{statistics.median(times):6.2f} s (min {min(times):.2f}, max {max(times):.2f}, "
            f"n={len(times)})")


def ratio(before: list[float], after: list[float]) -> str:
    if not before or not after:
        return ""
    return f"{statistics.median(before) / statistics.median(after):.2f}x"


def passed_checks(out: Path) -> dict[str, int]:
    """Student -> how many of its compare checks passed, from a run's logs."""
    passed = {}
    for log in out.glob("*/submission_log.json"):
        data = json.loads(log.read_text())
        passed[data["student"]] = sum(1 for c in data["checks"] if c["passed"]
                                      and not c["name"].endswith("accuracy"))
    return passed


# -- nbgrader ---------------------------------------------------------------------------------

TEST_CELL = '''\
# The grader's checks, asked the way the grader asks them: same probes, same inputs, same
# tolerances, compared with the same expected values.
import pickle as _pickle, types as _types
from grader.compare import compare as _compare
with open({checks!r}, "rb") as _f:
    _checks = _pickle.load(_f)
_probes = _types.ModuleType("probes")
exec(compile(open({probes!r}).read(), "probes.py", "exec"), _probes.__dict__)
_passed = 0
for _name, _probe, _args, _want, _rtol, _atol in _checks:
    try:
        _got = getattr(_probes, _probe)(globals(), **_args)
        _passed += _compare(_got, _want, rtol=_rtol, atol=_atol, name=_name).passed
    except Exception as _exc:
        print(_name, "failed:", type(_exc).__name__, _exc)
print(f"{{_passed}}/{{len(_checks)}} checks passed")
assert _passed == len(_checks)
'''


def nbgrader_course(base: Path, subs: Path, students: list[str], cache: Path) -> Path:
    """An nbgrader course whose submitted notebooks are ``subs``'s, each with one test cell."""
    from grader import spec
    from grader.grading import expected
    from grader.grading.plan import GradingPlan

    a = spec.find(ROOT, "rnn_and_grad")
    plan = GradingPlan.build(a)
    # The newest the after runs computed (a checkout edited meanwhile has another cache key).
    files = sorted((cache / "expected").glob(f"{a.name}-*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise RuntimeError("no cached expected values to compare with")
    values = expected.decode(files[-1].read_bytes(), source=files[-1])
    checks = [(c.name, plan.requests[c.request_key][0], plan.requests[c.request_key][1],
               values[c.request_key], c.tolerance.rtol, c.tolerance.atol)
              for c in a.checks if c.kind != "accuracy"]
    course = base / "course"
    (course / "source" / "rnn").mkdir(parents=True)
    with open(base / "checks.pkl", "wb") as f:
        pickle.dump(checks, f)
    shutil.copy(ROOT / "assignments" / "rnn_and_grad" / "probes.py", base / "probes.py")
    cell = nbformat.v4.new_code_cell(TEST_CELL.format(checks=str(base / "checks.pkl"),  # type: ignore[no-untyped-call]
                                                      probes=str(base / "probes.py")))
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "checks", "locked": True,
                                 "points": len(checks), "schema_version": 3,
                                 "solution": False, "task": False}
    source = nbformat.read(str(ROOT / "reference" / NOTEBOOK), as_version=4)  # type: ignore[no-untyped-call]
    for c in source.cells:  # our solution markers are nbgrader's too: outside its solution cells
        c.source = "\n".join(line for line in c.source.split("\n")
                              if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)
    source.cells.append(cell)
    nbformat.write(source, str(course / "source" / "rnn" / NOTEBOOK))  # type: ignore[no-untyped-call]
    (course / "nbgrader_config.py").write_text(textwrap.dedent(f"""\
        c = get_config()
        c.CourseDirectory.root = {str(course)!r}
        c.CourseDirectory.course_id = "bench"
        c.CourseDirectory.db_url = "sqlite:///{course}/gradebook.db"
        c.Execute.timeout = 120
        c.Execute.interrupt_on_timeout = True
        """))
    for student in students:
        nb = nbformat.read(str(subs / student / NOTEBOOK), as_version=4)  # type: ignore[no-untyped-call]
        nb.cells.append(cell)
        target = course / "submitted" / student / "rnn"
        target.mkdir(parents=True)
        nbformat.write(nb, str(target / NOTEBOOK))  # type: ignore[no-untyped-call]
    return course


def nbgrader_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_ROOT", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # the test cell imports grader.compare, the probes grader.probelib
    env["PIP_NO_INDEX"] = "1"  # a notebook's %pip never reaches the network
    env["MPLBACKEND"] = "Agg"
    return env


def nbgrader_autograde(venv: Path, course: Path, *, timeout: float) -> float:
    nbgrader = str(venv / "bin" / "nbgrader")
    env = nbgrader_env(venv)
    shutil.rmtree(course / "autograded", ignore_errors=True)
    started = time.perf_counter()
    proc = subprocess.run([nbgrader, "autograde", "rnn", "--force", "--create"], cwd=course,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - started
    graded = list((course / "autograded").glob(f"*/rnn/{NOTEBOOK}"))
    wanted = len(list((course / "submitted").iterdir()))
    if proc.returncode != 0 or len(graded) != wanted:
        raise RuntimeError(f"nbgrader autograde exited {proc.returncode}, {len(graded)} of "
                           f"{wanted} graded: {proc.stderr.strip()[-800:]}")
    return wall


def nbgrader_passed(course: Path) -> dict[str, int]:
    """Student -> checks its test cell passed, read from nbgrader's executed notebooks."""
    passed = {}
    for path in course.glob(f"autograded/*/rnn/{NOTEBOOK}"):
        nb = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
        text = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []))
        found = re.search(r"(\d+)/\d+ checks passed", text)
        passed[path.parent.parent.name] = int(found.group(1)) if found else -1
    return passed


def nbgrader_prepare(venv: Path, course: Path, *, timeout: float) -> None:
    nbgrader = str(venv / "bin" / "nbgrader")
    proc = subprocess.run([nbgrader, "generate_assignment", "rnn", "--force"], cwd=course,
                          env=nbgrader_env(venv), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-800:]}")


# -- main -------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, default=Path("/tmp/before"),
                        help="the checkout before (its .venv/bin/python runs it)")
    parser.add_argument("--reps", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--n", type=int, default=30, help="submissions for (c)")
    parser.add_argument("--parts", default="abcde", help="which of a, b, c, d, e to run")
    parser.add_argument("--nbgrader", type=Path, metavar="VENV",
                        help="a venv with nbgrader 0.9.6, torch, matplotlib, numpy: grade (c)'s "
                             "notebooks with nbgrader autograde too")
    parser.add_argument("--nbgrader-reps", type=int, default=1, help="nbgrader runs (slow)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    args = parser.parse_args()

    before = Tree("before", args.before, args.before / ".venv" / "bin" / "python")
    after = Tree("after", ROOT, Path(sys.executable))
    trees = [t for t in (before, after) if not t.available()]
    for t in (before, after):
        if t.available():
            print(f"{t.name}: not measured ({t.available()})")
    base = Path(tempfile.mkdtemp(prefix="grader-startup-bench-"))
    times: dict[tuple[str, str], list[float]] = {}
    try:
        one, many = base / "one", base / "many"
        (one / ONE).mkdir(parents=True)
        shutil.copy(ROOT / "examples" / "submissions" / ONE / NOTEBOOK, one / ONE)
        students = make_submissions(many, args.n)
        runs = iter(range(10**6))
        ours: dict[str, int] = {}  # student -> checks passed, from after's logs of (c)

        def out() -> Path:
            return base / f"out{next(runs)}"

        # Warm both once (the OS's file cache, and the caches (b) and (c) start from).
        warm_cache = base / "cache-warm"
        before_cache: Path | None = None
        for t in trees:
            o = out()
            imported: list[str] = []
            grade(t, one, o, warm_cache, timeout=args.timeout, imports=imported)
            print(f"{t.name}: the grader's own process imports torch: "
                  f"{'yes' if 'torch' in imported else 'no'} (python -X importtime, "
                  f"{len(imported)} top-level modules)")
            if t is before:
                before_cache = base / "cache-before"
                shutil.copytree(o / BEFORE_CACHE, before_cache)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start "
              f"(shared: other jobs may run on the same cores)")
        for rep in range(args.reps):
            for t in trees:
                seed = before_cache if t is before else None
                if "a" in args.parts:
                    fresh = base / f"cache-fresh{next(runs)}"
                    times.setdefault(("a", t.name), []).append(
                        grade(t, one, out(), fresh, timeout=args.timeout))
                if "b" in args.parts:
                    times.setdefault(("b", t.name), []).append(
                        grade_cached(t, one, out(), warm_cache, timeout=args.timeout,
                                     seed_before_cache=seed))
                if "c" in args.parts:
                    o = out()
                    times.setdefault(("c", t.name), []).append(
                        grade_cached(t, many, o, warm_cache, timeout=args.timeout,
                                     seed_before_cache=seed))
                    if t is after and not ours:
                        ours.update(passed_checks(o))
            if "d" in args.parts or "e" in args.parts:
                # A listener left by the run before (the first rep's starts it, unmeasured).
                grade_cached(after, one, out(), warm_cache, timeout=args.timeout, extra=WARM)
            if "d" in args.parts and after in trees:
                times.setdefault(("d", "after"), []).append(
                    grade_cached(after, one, out(), warm_cache, timeout=args.timeout, extra=WARM))
            if "e" in args.parts and after in trees:
                times.setdefault(("e", "after"), []).append(
                    grade_cached(after, many, out(), warm_cache, timeout=args.timeout, extra=WARM))
            print(f"  rep {rep + 1}/{args.reps} done (load average {os.getloadavg()[0]:.1f})",
                  flush=True)
            for o in base.glob("out*"):
                shutil.rmtree(o, ignore_errors=True)

        nbg: list[float] = []
        nbg_note = "not measured (no --nbgrader VENV)"
        if args.nbgrader is not None and "c" in args.parts:
            try:
                course = nbgrader_course(base / "nbgrader", many, students, warm_cache)
                nbgrader_prepare(args.nbgrader, course, timeout=args.timeout)
                for _ in range(args.nbgrader_reps):
                    nbg.append(nbgrader_autograde(args.nbgrader, course,
                                                  timeout=max(args.timeout, 60.0 * args.n)))
                nbg_note = ""
                theirs = nbgrader_passed(course)
                same = sum(1 for k, v in theirs.items() if ours.get(k) == v)
                nbg_note = (f"    checks passed, nbgrader's test cell against after's logs: "
                            f"same for {same} of {len(theirs)} notebooks")
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                nbg_note = f"not measured ({exc})"

        labels = {"a": "(a) 1 submission, expected values uncached",
                  "b": "(b) 1 submission, expected values cached",
                  "c": f"(c) {args.n} submissions, expected values cached",
                  "d": "(d) as (b), worker kept warm by an earlier run (--keep-warm)",
                  "e": f"(e) as (c), worker kept warm by an earlier run (--keep-warm)"}
        print()
        print(f"`grader run SUBMISSIONS --out <fresh> -j 2`, wall time end to end, median of "
              f"{args.reps}; before = {args.before}, after = {ROOT}")
        print("(b), (c) before: its cache lives in --out/.cache, so each fresh --out got a copy "
              "of it; after: $GRADER_CACHE_DIR")
        for part in "abcde":
            if part not in args.parts:
                continue
            b, a = times.get((part, "before"), []), times.get((part, "after"), [])
            print(f"{labels[part]}")
            print(f"    before  {fmt(b)}")
            print(f"    after   {fmt(a)}")
            if b and a:
                print(f"    before / after: {ratio(b, a)}")
            if part in "de" and times.get(("b" if part == "d" else "c", "after")) and a:
                cold = times[("b" if part == "d" else "c", "after")]
                print(f"    after cold / after warm: {ratio(cold, a)}")
        if "c" in args.parts:
            if nbg:
                print(f"(c) nbgrader 0.9.6 autograde, same {args.n} notebooks and checks: {fmt(nbg)}")
                print(nbg_note)
                for part, name in (("c", "before"), ("c", "after"), ("e", "after")):
                    if times.get((part, name)):
                        print(f"    nbgrader / {name}{' warm' if part == 'e' else ''}: "
                              f"{ratio(nbg, times[(part, name)])}")
            else:
                print(f"(c) nbgrader: {nbg_note}")
        print(json.dumps({"seconds": {f"{p}_{n}": v for (p, n), v in times.items()},
                          "nbgrader": nbg}))
    finally:
        stop_listeners(warm_cache)
        shutil.rmtree(base, ignore_errors=True)


def stop_listeners(cache: Path) -> None:
    """End the warm listeners (d) and (e) started: only those whose socket is in ``cache``."""
    import signal

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--listen" in argv and any(a.startswith(os.fsencode(cache)) for a in argv):
            try:
                os.kill(int(proc.name), signal.SIGTERM)
            except OSError:
                pass


if __name__ == "__main__":
    main()
