"""``grader build`` proves each assignment before students see it.

Three authoring mistakes pass every other test and then mis-grade a whole class, so the build
refuses them, naming the check:

- the reference must get full marks on every check: an ``outputs`` key its probe never returns
  is named as such (every student would read "missing from what your code returned");
- each compare check is asked twice more, with the student's side seeded differently (a cell
  before the notebook's, and every probe call), and its answer must still be the expected one:
  a probe that reads the student's random initialisation passes the reference and fails a
  correct alternative that creates its parameters in another order;
- the untouched student template (the stub) must score 0, each compare check saying "not
  implemented" (an accuracy check fails downstream, for want of a trained model).

A proof that passed is remembered by fingerprint (the expected values' cache key, the
template's hash), so a second build costs nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from grader import spec
from grader.errors import SpecError
from grader.execution import Execution, Executor
from grader.files import atomic_write
from grader.grading import expected as expected_mod
from grader.grading.plan import GradingPlan
from grader.grading.score import grade
from grader.publish import template
from grader.submission import read_notebook

SEEDS = (1, 2)
RANDOM_STATE = ("depends on the student's random state: set parameters with `fill_` or seed in "
                "the probe")
_NOT_IMPLEMENTED = ("not implemented", "NotImplementedError")

# Appended to the probes for a proof run: every probe function starts from ``seed``, so a
# probe that creates parameters without fixing them gives a different answer each run.
_SEEDED_PROBES = '''

# -- added by grader build's proof (grader.authoring.prove), never shipped --
def _grader_proof_seeded(function, seed={seed}):
    import functools
    import random

    @functools.wraps(function)
    def call(*args, **kwargs):
        random.seed(seed)
        import numpy
        numpy.random.seed(seed)
        try:
            import torch
            torch.manual_seed(seed)
        except ImportError:
            pass
        return function(*args, **kwargs)
    return call


for _grader_name, _grader_value in list(globals().items()):
    if (not _grader_name.startswith("_") and isinstance(_grader_value, type(_grader_proof_seeded))
            and _grader_value.__module__ == __name__):
        globals()[_grader_name] = _grader_proof_seeded(_grader_value)
'''

# A first cell for a proof run: the student's own random state, different each run.
_SEED_CELL = '''import random as _grader_random
_grader_random.seed({seed})
import numpy as _grader_numpy
_grader_numpy.random.seed({seed})
try:
    import torch as _grader_torch
    _grader_torch.manual_seed({seed})
except ImportError:
    pass'''


def _proof_file(plan: GradingPlan, reference: Path) -> Path:
    ref = read_notebook(reference)
    blob = "\0".join([expected_mod.cache_key(plan, ref.sha256), "proof-1"])
    key = hashlib.sha256(blob.encode()).hexdigest()[:24]
    return expected_mod.cache_root() / "proved" / f"{plan.assignment.name}-{key}"


def _run(plan: GradingPlan, notebook: Path, executor: Executor, *,
         seed: int | None) -> tuple[Execution, list[str | None]]:
    nb = read_notebook(notebook)
    cells = list(nb.cells)
    probes = plan.assignment.probes_source
    if seed is not None:
        cells = [_SEED_CELL.format(seed=seed), *cells]
        probes += _SEEDED_PROBES.format(seed=seed)
    workdir = plan.stage_notebook(notebook)
    try:
        execution = executor.run(workdir=workdir, cells=cells, probes_source=probes,
                                 requests=plan.requests)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return execution, cells


def _where(a: spec.Assignment, check: spec.Check) -> str:
    index = next(i for i, c in enumerate(a.checks) if c.name == check.name)
    return f"checks[{index}] ({check.name})"


def reference_problems(a: spec.Assignment, plan: GradingPlan, execution: Execution,
                       cells: list[str | None], expected: dict[str, Any],
                       reference: Path) -> dict[str, str]:
    """check name -> what is wrong, for each check the reference does not pass in full."""
    problems: dict[str, str] = {}
    results = {r.name: r for r in grade(assignment=a, execution=execution, expected=expected,
                                        truth=plan.truth, cells=cells)}
    for check in a.checks:
        result = results[check.name]
        if result.score >= check.points and result.passed:
            continue
        answer = execution.answers.get(check.request_key)
        got = answer.value if answer is not None and answer.ok else None
        where = f"{a.directory / 'assignment.yaml'}: {_where(a, check)}"
        if check.kind == "compare" and isinstance(got, dict):
            missing = [k for k in (check.outputs or ()) if k not in got]
            if missing:
                problems[check.name] = (
                    f"{where}: outputs lists {', '.join(f'`{k}`' for k in missing)}, which probe "
                    f"`{check.probe}` never returns (it returns "
                    f"{', '.join(f'`{k}`' for k in sorted(got)) or 'nothing'})")
            else:
                problems[check.name] = f"{where}: {RANDOM_STATE}"
            continue
        why = (result.detail or result.message).splitlines()[0]
        problems[check.name] = (f"{reference}: the reference scores {result.score:g} of "
                                f"{check.points:g} on check {check.name}: {why}")
    return problems


def stub_problems(a: spec.Assignment, plan: GradingPlan, execution: Execution,
                  cells: list[str | None], expected: dict[str, Any], stub: Path) -> list[str]:
    """What is wrong with the untouched template: any point, any failure that does not say
    "not implemented"."""
    problems = []
    kinds = {c.name: c.kind for c in a.checks}
    for result in grade(assignment=a, execution=execution, expected=expected,
                        truth=plan.truth, cells=cells):
        text = result.detail or result.message
        if result.score > 0:
            problems.append(f"{stub}: the untouched template scores {result.score:g} on check "
                            f"{result.name} (a stub must score 0: put the code the check needs "
                            "between # BEGIN SOLUTION and # END SOLUTION)")
        # An accuracy check fails downstream (no trained model): only its 0 points matter.
        elif kinds[result.name] == "compare" and not any(m in text for m in _NOT_IMPLEMENTED):
            problems.append(f"{stub}: check {result.name} fails the untouched template without "
                            f"saying \"not implemented\": {text.splitlines()[0] if text else ''}")
    return problems


def _write_stub(reference: Path, folder: Path) -> Path:
    """The student template of ``reference``, as ``grader build`` will write it."""
    stub = folder / reference.name
    nb = template.make_template(template.read_notebook(reference), source_name=str(reference))
    stub.write_text(template.notebook_text(nb), encoding="utf-8")
    return stub


def prove(a: spec.Assignment, *, reference: Path, executor: Executor,
          data_dir: Path | None = None) -> None:
    """Raise ``SpecError`` listing every problem of ``a`` (see the module's docstring)."""
    plan = GradingPlan.build(a, data_dir=data_dir)
    proof = _proof_file(plan, reference)  # the stub is made from the reference: keyed with it
    if proof.is_file():
        return
    expected = expected_mod.compute(plan=plan, reference=reference, executor=executor)
    problems: dict[str, str] = {}
    for seed in SEEDS:
        execution, cells = _run(plan, reference, executor, seed=seed)
        broken = [c for c in execution.cells if c.status != "ok"]
        if broken:
            raise SpecError(f"{reference}: cell {broken[0].index} of the reference did not run "
                            f"cleanly with the student's side seeded {seed} ({broken[0].status}: "
                            f"{(broken[0].error or {}).get('evalue', '')})")
        for name, problem in reference_problems(a, plan, execution, cells, expected,
                                                reference).items():
            problems.setdefault(name, problem)
    found = [problems[c.name] for c in a.checks if c.name in problems]
    with tempfile.TemporaryDirectory(prefix="grader-stub-") as folder:
        stub = _write_stub(reference, Path(folder))
        execution, cells = _run(plan, stub, executor, seed=None)
    found += stub_problems(a, plan, execution, cells, expected,
                           Path("student_template") / reference.name)
    if found:
        raise SpecError(f"{a.name} is not ready for students ({len(found)} problem"
                        f"{'s' if len(found) > 1 else ''}):\n  " + "\n  ".join(found))
    try:
        atomic_write(proof, b"proved\n")
    except OSError:
        pass  # a read-only cache costs a proof next time, never a result
