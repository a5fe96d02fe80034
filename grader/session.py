"""Entry points that tie the stages together: a grading run, a student's self-check, a build.

Keyword-only on purpose: these are what the CLI, the tests and the benchmark call.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import nbformat
import yaml
from rich.console import Console

from grader import batch, report, sandbox, spec, wire
from grader.errors import InputError, SpecError
from grader.execute import Worker

if TYPE_CHECKING:  # not at run time: grader.cluster imports Dask
    from grader.cluster import ClusterExecutor

CACHE_DIR = ".cache"


class GradingSession:
    """One assignment graded into one output folder. Holds the expected values (grader side)."""

    def __init__(self, *, root: Path, assignment: spec.Assignment, out_dir: Path,
                 force: bool = False, data_dir: Path | None = None,
                 console: Console | None = None, checks_dir: Path | None = None,
                 jobs: int = 1, scheduler: str | None = None,
                 allow_unconfined: bool = False, threads: int = 1) -> None:
        """``checks_dir`` (a bundle from ``grader bundle``) replaces ``root/reference``.

        With ``scheduler`` (a Dask address) submissions run on that cluster; the reference, the
        expected values and all grading stay here. ``allow_unconfined`` lets it use workers
        whose sandbox has a protection off.
        """
        self.scheduler = scheduler
        self.allow_unconfined = allow_unconfined
        self._cluster: ClusterExecutor | None = None
        self.checks_dir = checks_dir
        self.jobs = jobs
        self.root = root
        self.assignment = assignment
        self.out_dir = out_dir
        self.force = force
        self.data_dir = data_dir
        self.console = console or Console(stderr=True, soft_wrap=True)
        # Threads per sandbox; its CPU-time limits count all of them, so scores do not change.
        self.limits = batch.limits_for(assignment, threads=threads)
        self._worker: Worker | None = None
        self.ctx: batch.Context | None = None
        self.worker_stats: list[dict[str, int]] = []
        self.stale: list[str] = []  # students whose logs were set aside (see report.set_aside_stale)

    def __enter__(self) -> GradingSession:
        a = self.assignment
        reference = self.root / "reference" / a.notebook
        if self.scheduler:
            from grader.cluster import ClusterExecutor

            # First: an unreachable scheduler stops the run (exit 5) before anything runs.
            self._cluster = ClusterExecutor(
                scheduler=self.scheduler, limits=self.limits,
                allow_unconfined=self.allow_unconfined,
                warn=lambda line: self.console.print(f"WARNING: {line}", style="bold red",
                                                     markup=False, highlight=False))
        try:
            # With a cluster, only the reference runs here.
            self._worker = Worker(limits=self.limits, slots=1 if self._cluster else self.jobs)
            self._prepare(a, reference, self._worker)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _prepare(self, a: spec.Assignment, reference: Path, worker: Worker) -> None:
        prepared = _prepare_data(a, self.data_dir)
        if self.checks_dir is not None:
            expected, ref_sha = load_expected(self.checks_dir)
        else:
            expected = batch.expected_values(
                assignment=a, reference=reference, worker=worker,
                cache_dir=self.out_dir / CACHE_DIR,
                stage_extra=prepared.stage if prepared else None,
                extra_args=prepared.probe_args if prepared else None)
            ref_sha = batch.read_notebook(reference).sha256
        missing = [c.name for c in a.checks if c.kind != "accuracy" and c.request_key not in expected]
        if missing:
            raise SpecError(f"no expected values for check(s) {', '.join(missing)}")
        warn_protections(worker.cgroup_report, self.console)
        self.ctx = batch.Context(
            assignment=a, expected=expected, out_dir=self.out_dir,
            fingerprint=batch.run_fingerprint(a, ref_sha, prepared.fingerprint if prepared else ""),
            truth=prepared.truth if prepared else {},
            extra_args=prepared.probe_args if prepared else {},
            stage_extra=prepared.stage if prepared else None, force=self.force)

    def __exit__(self, *exc: object) -> None:
        if self._worker is not None:
            self._worker.close()
        if self._cluster is not None:
            self._cluster.close()

    def grade(self, dirs: list[Path], *, jobs: int,
              on_done: Callable[[dict[str, Any]], None] = lambda r: None) -> list[dict[str, Any]]:
        assert self.ctx is not None, "use GradingSession as a context manager"
        if self._cluster is not None:  # as many in flight as the cluster has sandboxes
            jobs = self._cluster.slots
        warned: list[bool] = []

        def done(result: dict[str, Any]) -> None:
            off = result.get("sandbox", {}).get("off", [])
            if off and not warned:
                warned.append(True)
                warn_protections(result["sandbox"]["protections"], self.console)
            on_done(result)

        self.stale = report.set_aside_stale(self.out_dir, [d.name for d in dirs])
        try:
            return batch.run_parallel(self.ctx, dirs, jobs=jobs, limits=self.limits,
                                      on_done=done, warm=self._cluster or self._worker,
                                      worker_stats=self.worker_stats)
        finally:  # interrupted too: the summary describes every log there is
            logs = list(batch.iter_logs(self.out_dir))
            report.write_summary(self.out_dir, logs, [q.id for q in self.assignment.questions])


def load_expected(checks_dir: Path) -> tuple[dict[str, Any], str]:
    """Expected values shipped in a checks bundle, and a fingerprint of them."""
    import hashlib

    path = checks_dir / "expected.json"
    try:
        raw = path.read_bytes()
        values = {k: wire.decode_value(v) for k, v in json.loads(raw).items()}
    except (OSError, ValueError, wire.WireError) as exc:
        raise SpecError(f"{path}: cannot read expected values ({exc})") from None
    return values, hashlib.sha256(raw).hexdigest()


def _prepare_data(a: spec.Assignment, data_dir: Path | None, *, missing_ok: bool = False) -> Any:
    if a.data is None:
        return None
    from grader import data as data_mod

    return data_mod.prepare(a, data_dir, missing_ok=missing_ok)


def warn_protections(protections: dict[str, str], console: Console) -> None:
    off = {k: v for k, v in protections.items() if v.startswith("off")}
    for name, state in sorted(off.items()):
        console.print(f"[bold red]WARNING: sandbox protection off: {name}[/] ({state[4:].strip()})")


# -- a student's self-check ----------------------------------------------------------------------

def assignment_name(notebook: Path) -> str:
    try:
        nb = nbformat.read(str(notebook), as_version=4)  # type: ignore[no-untyped-call]
        name = nb.metadata.get("grader", {}).get("assignment")
    except Exception:
        name = None
    return str(name) if name else notebook.stem


def self_check(*, notebook: Path, checks_dir: Path | None, root: Path | None,
               data_dir: Path | None = None, console: Console | None = None,
               out_dir: Path | None = None) -> dict[str, Any]:
    """Grade ``notebook`` on the visible checks and return its log.

    With ``out_dir`` the log, the plots and the feedback page are kept there; without, nothing
    is written. Checks come from the bundle beside the notebook (``checks/<assignment>/``, what
    ``grader build`` ships), ``checks_dir``, or else the project's assignment and reference.
    """
    from grader import feedback

    console = console or Console(stderr=True, soft_wrap=True)
    if notebook.is_symlink():  # it may point at the reference or a classmate's work
        raise InputError(f"{notebook}: is a symbolic link; only a notebook file itself is graded")
    name = assignment_name(notebook)
    shipped = checks_dir or notebook.resolve().parent / "checks" / name
    bundle: Path | None
    if (shipped / "expected.json").is_file():
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
            staged = batch.stage(student_dir)
            student_dir = scratch / "submission" / student_dir.name
            student_dir.parent.mkdir()
            shutil.move(str(staged), student_dir)
            (student_dir / notebook.name).replace(student_dir / a.notebook)
        grades = scratch / "grades"
        with GradingSession(root=project, assignment=a, out_dir=grades, force=True,
                            data_dir=data_dir, console=console, checks_dir=bundle) as session:
            [log] = session.grade([student_dir], jobs=1)
        log.pop("_reused", None)
        if out_dir is not None:
            produced = grades / student_dir.name
            shutil.rmtree(out_dir / "figures", ignore_errors=True)
            if (produced / "figures").is_dir():
                shutil.copytree(produced / "figures", out_dir / "figures")
            report.atomic_write(out_dir / report.LOG_NAME,
                                (json.dumps(log, indent=2, allow_nan=False) + "\n").encode())
            feedback.write_page(log, out_dir, titles={q.id: q.title for q in a.questions},
                                visible_only=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return log


# -- the student package ----------------------------------------------------------------------

def build_student_package(*, root: Path, console: Console, check_only: bool = False,
                          data_dir: Path | None = None) -> list[str]:
    """Write student_template/ from reference/; return what was (or would be) changed."""
    from grader import build

    reference_dir, template_dir = root / "reference", root / "student_template"
    stale = build.stale_templates(reference_dir=reference_dir, template_dir=template_dir)
    wanted: dict[Path, bytes] = {}
    assignments = spec.load_all(root)
    limits = max((batch.limits_for(a) for a in assignments), key=lambda l: l.notebook_seconds,
                 default=sandbox.Limits())
    tolerances: dict[Path, dict[str, spec.Tolerance]] = {}
    with Worker(limits=limits) as worker:
        for a in assignments:
            wanted.update(_shipped_checks(a, root, template_dir, worker, data_dir))
            tolerances[template_dir / "checks" / a.name / "expected.json"] = {
                c.request_key: c.tolerance for c in a.visible_only().checks}
    changed = {path: content for path, content in wanted.items()
               if not _same_content(path, content, tolerances.get(path))}
    from grader import student_package  # the wheel carries the checks as the template will
    changed.update(student_package.stale_wheel(template_dir=template_dir, checks={
        p: changed[p] if p in changed else p.read_bytes() for p in wanted}))
    stale += [str(path.relative_to(root)) for path in changed]
    if check_only:
        return stale
    build.build_templates(reference_dir=reference_dir, template_dir=template_dir)
    for path, content in changed.items():
        report.atomic_write(path, content)
    for item in stale:
        console.print(f"wrote {item}")
    return stale


def _same_content(path: Path, content: bytes, tolerances: dict[str, spec.Tolerance] | None) -> bool:
    """Is ``path`` already ``content``? Expected values count as equal within their checks'
    tolerance: float32 results differ in the last bit from one CPU to another."""
    try:
        old = path.read_bytes()
    except OSError:
        return False
    if old == content or tolerances is None:
        return old == content
    from grader.compare import compare

    try:
        have = {k: wire.decode_value(v) for k, v in json.loads(old).items()}
        want = {k: wire.decode_value(v) for k, v in json.loads(content).items()}
    except (ValueError, wire.WireError):
        return False
    if set(have) != set(want):
        return False
    for key, value in want.items():
        tol = tolerances.get(key, spec.Tolerance(rtol=0.0, atol=0.0))
        if not compare(have[key], value, rtol=tol.rtol, atol=tol.atol, name=key).passed:
            return False
    return True


def _shipped_checks(a: spec.Assignment, root: Path, template_dir: Path, worker: Worker,
                    data_dir: Path | None) -> dict[Path, bytes]:
    """The visible checks' spec, probes and expected values, never the hidden ones; and the
    assignment's data where the template's notebook reads it."""
    files: dict[Path, bytes] = {}
    data_at = None
    if a.data is not None:
        from grader import data as data_mod

        source = data_mod.locate(a, data_dir)
        data_at = template_dir / str(a.extra.get("stage_data_as", "data/names"))
        for path in sorted(source.iterdir()):
            if path.is_file() and not path.is_symlink():
                files[data_at / path.name] = path.read_bytes()
    files.update(checks_bundle(a, root=root, dest=template_dir / "checks" / a.name,
                               worker=worker, data_dir=data_dir, include_hidden=False,
                               data_at=data_at))
    return files


def checks_bundle(a: spec.Assignment, *, root: Path, dest: Path, worker: Worker,
                  data_dir: Path | None, include_hidden: bool,
                  data_at: Path | None = None) -> dict[Path, bytes]:
    """Files that let ``grader`` grade without ``reference/``: spec, probes, expected values.

    With ``include_hidden`` (an instructor's bundle, e.g. for Gradescope) the hidden checks and
    their expected values are in it; without (the student template) they are not. ``data_at``
    is where the assignment's data will sit beside the bundle (the template's copy).
    """
    visible = a if include_hidden else a.visible_only()
    raw = yaml.safe_load((a.directory / "assignment.yaml").read_text())
    if not include_hidden:
        raw["checks"] = [c for c in raw["checks"]
                         if c.get("visibility") == "visible" and c.get("kind") != "accuracy"]
    if a.data is not None:
        data_spec = raw.get("data", {})
        data_spec.pop("path", None)
        if not include_hidden:
            data_spec.pop("holdout_salt", None)
        if data_at is not None:
            data_spec["path"] = os.path.relpath(data_at, dest)
    reference = root / "reference" / a.notebook
    if not reference.is_file():
        raise SpecError(f"{reference}: reference notebook not found for {a.name}")
    prepared = _prepare_data(visible, data_dir)
    expected = batch.expected_values(
        assignment=visible, reference=reference, worker=worker, cache_dir=None,
        stage_extra=prepared.stage if prepared else None,
        extra_args=prepared.probe_args if prepared else None)
    header = ("# Generated by grader from assignments/. Do not edit.\n" if include_hidden else
              "# Visible checks only, generated by `grader build` from assignments/. Do not edit.\n")
    return {
        dest / "assignment.yaml": (header + yaml.safe_dump(raw, sort_keys=False)).encode(),
        dest / visible.probes_path.name: visible.probes_path.read_bytes(),
        dest / "expected.json": (json.dumps({k: wire.encode_value(v) for k, v in sorted(expected.items())},
                                            indent=1, sort_keys=True) + "\n").encode(),
    }
