"""Expected values: the reference notebook run through the very same executor and probes.

They are computed once per *fingerprint* (reference, spec, probes, data, grader code and
library versions) and cached in the user's cache folder, shared by every ``--out``: a second
run, or a run into a new folder, starts grading at once. Cache files are written atomically
(``grader.files``), so concurrent runs at worst compute the same values twice. A checks bundle
(``grader bundle``, the student template, Gradescope) ships them as ``expected.json``, read
here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from grader import logfile, wire
from grader.errors import InputError, SpecError
from grader.execution import Executor
from grader.files import atomic_write, read_capped
from grader.grading.plan import GradingPlan
from grader.spec import Check
from grader.submission import Notebook, cell_label, read_notebook

EXPECTED_NAME = "expected.json"
MAX_EXPECTED_BYTES = 256 * 2**20


def cache_root() -> Path:
    """``$GRADER_CACHE_DIR``, else ``$XDG_CACHE_HOME/grader``, else ``~/.cache/grader``."""
    if os.environ.get("GRADER_CACHE_DIR"):
        return Path(os.environ["GRADER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "grader"


def encode(values: dict[str, Any]) -> bytes:
    return (json.dumps({k: wire.encode_value(v) for k, v in sorted(values.items())},
                       indent=1, sort_keys=True) + "\n").encode()


def decode(raw: bytes, *, source: Path) -> dict[str, Any]:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a mapping")
        return {str(k): wire.decode_value(v) for k, v in data.items()}
    except (ValueError, wire.WireError, RecursionError) as exc:
        raise SpecError(f"{source}: cannot read expected values ({exc})") from None


def load(checks_dir: Path) -> tuple[dict[str, Any], str]:
    """Expected values shipped in a checks bundle, and a fingerprint of them."""
    path = checks_dir / EXPECTED_NAME
    try:
        raw = read_capped(path, MAX_EXPECTED_BYTES, what="expected-values file")
    except InputError as exc:
        raise SpecError(f"{path}: cannot read expected values ({exc})") from None
    return decode(raw, source=path), hashlib.sha256(raw).hexdigest()


def cache_key(plan: GradingPlan, reference_sha: str) -> str:
    return hashlib.sha256(json.dumps(
        [plan.fingerprint(reference_sha), logfile.versions(), sorted(plan.requests)],
        sort_keys=True).encode()
    ).hexdigest()[:24]


def read_reference(reference: Path) -> Notebook:
    if not reference.is_file():
        raise InputError(f"{reference}: reference notebook not found")
    return read_notebook(reference)


def _cache_file(plan: GradingPlan, nb: Notebook) -> Path:
    return cache_root() / "expected" / f"{plan.assignment.name}-{cache_key(plan, nb.sha256)}.json"


def lookup(*, plan: GradingPlan, reference: Path, notebook: Notebook | None = None
           ) -> dict[str, Any] | None:
    """The cached expected values for this plan and reference, or None: no executor needed."""
    nb = notebook or read_reference(reference)
    cache = _cache_file(plan, nb)
    try:
        cached = decode(read_capped(cache, MAX_EXPECTED_BYTES), source=cache)
    except (InputError, SpecError):
        return None  # absent or damaged: compute it again
    # Only this plan's checks: a visible-only bundle must never carry a hidden value.
    wanted = {c.request_key for c in plan.assignment.checks}
    if not wanted <= set(cached):
        return None
    return {k: v for k, v in cached.items() if k in wanted}


def compute(*, plan: GradingPlan, reference: Path, executor: Executor,
            use_cache: bool = True, notebook: Notebook | None = None) -> dict[str, Any]:
    """Run the reference through the checks; every check must pass there, or the spec is wrong."""
    a = plan.assignment
    nb = notebook or read_reference(reference)
    cache = _cache_file(plan, nb)
    if use_cache:
        cached = lookup(plan=plan, reference=reference, notebook=nb)
        if cached is not None:
            return cached
    workdir = plan.stage_notebook(reference)
    try:
        execution = executor.run(workdir=workdir, cells=list(nb.cells),
                                 probes_source=a.probes_source, requests=plan.requests)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    broken = [c for c in execution.cells if c.status != "ok"]
    if broken:
        c = broken[0]
        raise SpecError(f"{reference}: {cell_label(nb.cells, c.index)} of the reference did not "
                        f"run cleanly ({c.status}: {(c.error or {}).get('evalue', '')})")
    values: dict[str, Any] = {}
    for check in a.checks:
        answer = execution.answers.get(check.request_key)
        if answer is None or not answer.ok:
            why = (answer.error or {}).get("evalue", "no answer") if answer else "no answer"
            raise SpecError(f"{reference}: the reference fails check {check.name!r} ({why})")
        values[check.request_key] = answer.value
    encoded = encode(values)
    if use_cache:
        try:
            atomic_write(cache, encoded)
        except OSError:
            pass  # a read-only cache folder costs time, never a result
    # As a later run reads them back from the cache (sorted keys, JSON types): a report's
    # wording must not depend on whether the expected values were cached.
    return decode(encoded, source=cache)


def same_within_tolerance(old: bytes, new: bytes, checks: Iterable[Check]) -> bool:
    """Are two ``expected.json`` the same for ``checks``: each check's outputs (all the
    probe's, without ``outputs``) within its tolerance? float32 results differ in the last bit
    from one CPU to another; that is no change, and neither is an output no check reads."""
    if old == new:
        return True
    from grader.compare import compare

    try:
        have = decode(old, source=Path(EXPECTED_NAME))
        want = decode(new, source=Path(EXPECTED_NAME))
    except SpecError:
        return False
    if set(have) != set(want):
        return False
    for check in checks:
        key = check.request_key
        if key not in want:
            return False
        got, expected = have[key], want[key]
        if check.outputs is not None and isinstance(got, dict) and isinstance(expected, dict):
            got = {o: got[o] for o in check.outputs if o in got}
            expected = {o: expected[o] for o in check.outputs if o in expected}
        tol = check.tolerance
        if not compare(got, expected, rtol=tol.rtol, atol=tol.atol, name=key).passed:
            return False
    return True
