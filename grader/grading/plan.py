"""A grading plan: everything one assignment's run decides once, before any submission runs.

Limits (CPU seconds, memory), the probe requests (with the data set's held-out inputs merged
in), how a submission is staged (its files plus the data set's visible part), the held-out
truth accuracy checks are scored against, and the fingerprint that says when a log or an
expected value is still valid. Built in the grader's process; the truth never leaves it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypedDict

from grader import __version__, datasets, logfile
from grader.execution import Limits, Requests
from grader.files import private_tmpdir
from grader.spec import Assignment
from grader.submission import stage


class WarmUp(TypedDict):
    """A warm worker's keywords for what its assignments import and run before it serves
    (``Worker(limits=..., **warm_up_for(assignments))``; ``ClusterExecutor`` takes them too)."""

    preload: tuple[str, ...]
    warmup: tuple[Path, ...]


def warm_up_for(assignments: Iterable[Assignment]) -> WarmUp:
    """The union of the assignments' ``preload`` modules and ``warmup.py`` scripts: one worker
    may serve several assignments (``grader build``)."""
    chosen = list(assignments)
    # A requirement's project name is often its module's (tqdm, einops): preloaded too, where
    # it imports at all (the worker skips one that does not); `preload` names the others.
    required = (re.sub(r"[-.]", "_", re.split(r"[^A-Za-z0-9._-]", r, maxsplit=1)[0]).lower()
                for a in chosen for r in a.requirements)
    modules = (*(m for a in chosen for m in a.preload), *(m for m in required if m.isidentifier()))
    return WarmUp(preload=tuple(dict.fromkeys(modules)),
                  warmup=tuple(dict.fromkeys(a.warmup_path for a in chosen
                                             if a.warmup_path is not None)))


def limits_for(assignment: Assignment, *, threads: int = 1) -> Limits:
    """The sandbox's limits; its times are CPU seconds (see sandbox.worker._run_session)."""
    probes = len(assignment.checks) + len(assignment.records)
    cpu = (assignment.notebook_seconds + probes * assignment.probe_seconds) * max(1, threads) + 60
    return Limits(cell_seconds=assignment.cell_seconds,
                  notebook_seconds=assignment.notebook_seconds,
                  probe_seconds=assignment.probe_seconds,
                  memory_mb=assignment.memory_mb, threads=max(1, threads),
                  cpu_seconds=int(cpu))


def requests_for(assignment: Assignment, extra_args: dict[str, dict[str, Any]] | None = None
                 ) -> Requests:
    """One request per distinct (probe, arguments) of the checks, and one per record."""
    requests: Requests = {}
    for check in assignment.checks:
        args = {**check.args, **(extra_args or {}).get(check.request_key, {})}
        requests[check.request_key] = (check.probe, args)
    for record in assignment.records:
        requests[record.request_key] = (record.probe, record.args)
    return requests


@dataclass(frozen=True)
class GradingPlan:
    assignment: Assignment
    limits: Limits
    requests: Requests
    truth: dict[str, Any] = field(default_factory=dict)
    stage_data: Callable[[Path], None] | None = None
    data_fingerprint: str = ""

    @classmethod
    def build(cls, assignment: Assignment, *, data_dir: Path | None = None, threads: int = 1,
              missing_data_ok: bool = False) -> GradingPlan:
        prepared = datasets.prepare(assignment, data_dir, missing_ok=missing_data_ok)
        return cls(
            assignment=assignment, limits=limits_for(assignment, threads=threads),
            requests=requests_for(assignment, prepared.probe_args if prepared else None),
            truth=prepared.truth if prepared else {},
            stage_data=prepared.stage if prepared else None,
            data_fingerprint=prepared.fingerprint if prepared else "")

    def stage(self, source_dir: Path) -> Path:
        """A private copy of a submission's folder, with the data set's visible part."""
        return stage(source_dir, extra=self.stage_data)

    def stage_notebook(self, notebook: Path) -> Path:
        """A private folder holding only ``notebook`` (the reference) and the data set; named
        after this process (``files.private_tmpdir``), so a run killed outright leaves none
        that the next run does not sweep."""
        workdir = private_tmpdir("ref")
        try:
            shutil.copyfile(notebook, workdir / notebook.name)
            if self.stage_data is not None:
                self.stage_data(workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return workdir

    def fingerprint(self, reference_sha: str) -> str:
        """Same assignment, reference, data and grader code: same fingerprint."""
        return hashlib.sha256(json.dumps(
            [self.assignment.fingerprint(), reference_sha, __version__,
             logfile.code_fingerprint(), self.data_fingerprint],
            sort_keys=True).encode()).hexdigest()
