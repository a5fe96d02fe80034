"""What is published from a course: the student template (``grader build``) and checks
bundles (``grader bundle``, Gradescope), each computed from the reference, never by hand.

A student-side bundle holds the visible checks only (spec, probes, expected values); an
instructor's bundle holds the hidden checks too. Accuracy checks never ship to students: they
need held-out labels only the grader has.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import yaml
from rich.console import Console

from grader import course, spec
from grader.errors import SpecError
from grader.execution import Executor, Limits
from grader.files import atomic_write
from grader.grading import expected as expected_mod
from grader.grading.plan import GradingPlan, limits_for, warm_up_for
from grader.publish import template

if TYPE_CHECKING:
    from grader.datasets import StudentCopy


def build_student_package(*, root: Path, console: Console, check_only: bool = False,
                          data_dir: Path | None = None) -> list[str]:
    """Write student_template/ from reference/; return what was (or would be) changed."""
    from grader.publish import student_package
    from grader.sandbox.local import Worker

    reference_dir, template_dir = root / "reference", root / "student_template"
    wanted: dict[Path, bytes] = {}
    assignments = spec.load_all(root)
    limits = max((limits_for(a) for a in assignments), key=lambda l: l.notebook_seconds,
                 default=Limits())
    # The checks each expected.json serves: a rebuild that moves a value within their
    # tolerance (another CPU's last bit) rewrites nothing.
    served: dict[Path, tuple[spec.Check, ...]] = {}
    with Worker(limits=limits, **warm_up_for(assignments)) as worker:
        for a in assignments:
            wanted.update(_shipped_checks(a, root, template_dir, worker, data_dir))
            served[template_dir / "checks" / a.name / expected_mod.EXPECTED_NAME] = (
                a.visible_only().checks)
        if not check_only:  # nothing is written for an assignment that would mis-grade
            from grader.authoring.prove import prove

            for a in assignments:
                prove(a, reference=reference_dir / a.notebook, executor=worker,
                      data_dir=data_dir)
    changed = {path: content for path, content in wanted.items()
               if not _same_content(path, content, served.get(path))}
    # The wheel carries the checks as the template will.
    this = course.load(root)
    shipped = {p: changed[p] if p in changed else p.read_bytes() for p in wanted}
    changed.update(student_package.stale_wheel(template_dir=template_dir, checks=shipped,
                                               version=this.version, dist=this.package))
    decorate = _check_cells(assignments, template_dir, shipped, this)
    stale = template.stale_templates(reference_dir=reference_dir, template_dir=template_dir,
                                     decorate=decorate)
    stale += [str(path.relative_to(root)) for path in changed]
    if check_only:
        return stale
    template.build_templates(reference_dir=reference_dir, template_dir=template_dir,
                             decorate=decorate)
    for path, content in changed.items():
        atomic_write(path, content)
    for item in stale:
        console.print(f"wrote {item}")
    return stale


def _check_cells(assignments: list[spec.Assignment], template_dir: Path,
                 shipped: dict[Path, bytes], this: course.Course) -> template.Decorate:
    """Adds each notebook's check cells and embedded visible checks (publish.check_cells),
    made from the files the template ships (``shipped``)."""
    from grader.publish import check_cells, student_package

    by_notebook = {a.notebook: a for a in assignments}

    def decorate(name: str, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
        a = by_notebook.get(name)
        if a is None:
            return nb
        folder = template_dir / "checks" / a.name
        bundle = {p.relative_to(folder).as_posix(): c for p, c in shipped.items()
                  if folder in p.parents}
        data = None
        if a.data is not None and a.data.stage_as:
            # The shipped spec's url: none where the template's copy is not the download's.
            shipped_data = yaml.safe_load(bundle["assignment.yaml"]).get("data") or {}
            data = check_cells.data_pins(shipped, url=shipped_data.get("url", ""),
                                         dest=a.data.stage_as,
                                         folder=template_dir / a.data.stage_as)
        return check_cells.add(nb, assignment=a, bundle=bundle,
                               requirement=student_package.requirement(this.version, this.package),
                               wheel=student_package.wheel_name(this.version, this.package),
                               data=data)

    return decorate


def _same_content(path: Path, content: bytes, checks: tuple[spec.Check, ...] | None) -> bool:
    """Is ``path`` already ``content``? Expected values count as equal within tolerance."""
    try:
        old = path.read_bytes()
    except OSError:
        return False
    if checks is None:
        return old == content
    return expected_mod.same_within_tolerance(old, content, checks)


def _shipped_checks(a: spec.Assignment, root: Path, template_dir: Path, executor: Executor,
                    data_dir: Path | None) -> dict[Path, bytes]:
    """The visible checks' spec, probes and expected values, never the hidden ones; and the
    assignment's data where the template's notebook reads it."""
    from grader import datasets

    files: dict[Path, bytes] = {}
    copy = None
    if a.data is not None:
        copy = datasets.student_copy(a, data_dir, template_dir)
        if copy is None:  # made by code: the visible part, as a graded notebook finds it
            files.update(datasets.staged_files(a, data_dir, template_dir))
        else:  # the visible part only: the held-out labels never ship (issue 18, 2)
            files.update(copy.files)
    files.update(checks_bundle(a, root=root, dest=template_dir / "checks" / a.name,
                               executor=executor, data_dir=data_dir, include_hidden=False,
                               student_data=copy))
    return files


def visible_spec(raw: dict[str, object]) -> dict[str, object]:
    """The YAML a student may see: visible checks only, no accuracy check."""
    checks = raw.get("checks")
    # The leaderboard ranks by accuracy checks, which students do not get (grader.gradebook).
    raw = {k: v for k, v in raw.items() if k != "leaderboard"}
    return {**raw, "checks": [c for c in (checks if isinstance(checks, list) else [])
                              if isinstance(c, dict)
                              and spec.shipped_to_students(c.get("visibility"), c.get("kind"))]}


def checks_bundle(a: spec.Assignment, *, root: Path, dest: Path, executor: Executor,
                  data_dir: Path | None, include_hidden: bool,
                  student_data: StudentCopy | None = None) -> dict[Path, bytes]:
    """Files that let ``grader`` grade without ``reference/``: spec, probes, expected values
    (and the warm-up script, where the assignment has one).

    With ``include_hidden`` (an instructor's bundle, e.g. for Gradescope) the hidden checks and
    their expected values are in it; without (the student template) they are not.
    ``student_data`` is the template's copy of the data beside the bundle: the spec then points
    at it, pins its checksum, and holds nothing more out of it (it is the visible part).
    """
    visible = a if include_hidden else a.visible_only()
    raw = yaml.safe_load((a.directory / "assignment.yaml").read_text())
    if not include_hidden:
        raw = visible_spec(raw)
    data_files: dict[Path, bytes] = {}
    if a.data is not None:
        data_spec = raw.get("data", {})
        data_spec.pop("path", None)
        if not include_hidden:
            data_spec.pop("holdout_salt", None)
        if student_data is not None:
            for key in ("holdout_salt", "holdout_path", "holdout_env", "holdout_fraction"):
                data_spec.pop(key, None)
            data_spec["holdout_fraction"] = 0
            data_spec["path"] = os.path.relpath(student_data.folder, dest)
            data_spec["sha256"] = student_data.sha256
            if not student_data.whole:  # a download of data.url holds what the copy does not
                data_spec["url"] = ""
        if a.data.module:  # the plug-in or generator, beside the spec as in assignments/
            data_files[dest / a.data.module] = (a.directory / a.data.module).read_bytes()
    reference = root / "reference" / a.notebook
    if not reference.is_file():
        raise SpecError(f"{reference}: reference notebook not found for {a.name}")
    plan = GradingPlan.build(visible, data_dir=data_dir)
    values = expected_mod.compute(plan=plan, reference=reference, executor=executor)
    files: dict[Path, bytes] = {}
    if a.warmup_path is not None:  # beside the spec, which then points at it by file name alone
        files[dest / a.warmup_path.name] = a.warmup_path.read_bytes()
        if "warmup" in raw:
            raw["warmup"] = a.warmup_path.name
    header = ("# Generated by grader from assignments/. Do not edit.\n" if include_hidden else
              "# Visible checks only, generated by `grader build` from assignments/. Do not edit.\n")
    return {
        dest / "assignment.yaml": (header + yaml.safe_dump(raw, sort_keys=False)).encode(),
        dest / visible.probes_path.name: visible.probes_path.read_bytes(),
        dest / expected_mod.EXPECTED_NAME: expected_mod.encode(values),
        **data_files,
        **files,
    }
