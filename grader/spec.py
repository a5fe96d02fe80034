"""Assignment specs: ``assignments/<name>/assignment.yaml`` loaded into frozen dataclasses.

Every problem is reported as a ``SpecError`` naming the file and the field, e.g.
``assignments/hw1/assignment.yaml: checks[3].tolerance.rtol: expected a number``.
Check inputs are either literals or seeded arrays, built here, in the grader, so the student's
process receives plain data and can't influence what it is asked.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from grader.errors import SpecError

SCHEMA_VERSION = 1
_VISIBILITIES = ("visible", "hidden")
_KINDS = ("compare", "accuracy")


@dataclass(frozen=True)
class Tolerance:
    rtol: float = 1e-5
    atol: float = 1e-6


@dataclass(frozen=True)
class Check:
    name: str
    question: str
    visibility: str
    points: float
    probe: str
    args: dict[str, Any]
    outputs: tuple[str, ...] | None
    tolerance: Tolerance
    hint: str = ""
    kind: str = "compare"
    requires_complete: bool = False
    accuracy: tuple[float, float] = (0.0, 1.0)
    args_spec: str = ""
    # An optional part of the course (the LSTM, several layers): its points are extra credit,
    # outside max_score, so leaving it out never costs a point.
    optional: bool = False

    @property
    def request_key(self) -> str:
        """Checks asking the same probe the same thing share one request."""
        blob = json.dumps([self.probe, self.args_spec], sort_keys=True)
        return f"{self.probe}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Record:
    """A probe whose answer is copied into the log (no points): e.g. the training history."""

    name: str
    probe: str
    args: dict[str, Any]

    @property
    def request_key(self) -> str:
        return f"record-{self.name}"


@dataclass(frozen=True)
class Question:
    id: str
    title: str


@dataclass(frozen=True)
class DataSpec:
    """A data set the assignment stages into the sandbox (see ``grader.datasets``)."""

    name: str
    env: str
    url: str = ""
    sha256: str = ""
    holdout_fraction: float = 0.1
    holdout_salt: str = ""
    # The copy shipped with the assignment, relative to its folder ("" when none is shipped).
    path: str = ""
    # Where the notebook reads it, relative to the notebook's folder.
    stage_as: str = ""


@dataclass(frozen=True)
class Assignment:
    name: str
    title: str
    notebook: str
    directory: Path
    probes_path: Path
    questions: tuple[Question, ...]
    checks: tuple[Check, ...]
    cell_seconds: float
    notebook_seconds: float
    probe_seconds: float
    memory_mb: int
    data: DataSpec | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    records: tuple[Record, ...] = ()
    # pip requirement strings a grading machine installs for the notebook (Gradescope's setup.sh).
    requirements: tuple[str, ...] = ()
    # Modules the warm worker imports once, so no submission pays for importing them.
    preload: tuple[str, ...] = ()
    # A script the warm worker runs once before serving (e.g. to warm a library's caches).
    warmup_path: Path | None = None

    @property
    def max_score(self) -> float:
        return float(sum(c.points for c in self.checks if not c.optional))

    @property
    def probes_source(self) -> str:
        return self.probes_path.read_text()

    def visible_only(self) -> Assignment:
        # Accuracy needs the held-out labels, which only the instructor's grader has.
        return replace(self, checks=tuple(c for c in self.checks
                                          if c.visibility == "visible" and c.kind != "accuracy"))

    def fingerprint(self) -> str:
        """Changes whenever the spec or the probes change (used by the cache)."""
        h = hashlib.sha256()
        h.update((self.directory / "assignment.yaml").read_bytes())
        h.update(self.probes_path.read_bytes())
        if self.warmup_path is not None:  # every submission starts from the state it leaves
            h.update(self.warmup_path.read_bytes())
        return h.hexdigest()


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, what: str) -> SpecError:
        return SpecError(f"{self.path}: {where}: {what}")

    def get(self, data: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...],
            default: Any = ..., ) -> Any:
        if key not in data:
            if default is ...:
                raise self.fail(f"{where}{key}", "missing")
            return default
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is float and isinstance(value, str):
            # YAML 1.1 reads 1e-4 (no dot) as a string; an instructor means the number.
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(f"{where}{key}", f"expected {_article(wanted)}, got {value!r}")
        return value


def _article(name: str) -> str:
    return {"float": "a number", "int": "an integer", "str": "a string", "dict": "a mapping",
            "list": "a list", "bool": "true or false"}.get(name, name)


_REQUIREMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._, -]*\])?\s*([<>=!~;@ (]|$)")


def _strings(r: _Reader, raw: dict[str, Any], key: str) -> tuple[str, ...]:
    """An optional top-level list of non-empty strings."""
    values = r.get(raw, key, "", list, [])
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise r.fail(f"{key}[{i}]", f"expected a non-empty string, got {value!r}")
    return tuple(v.strip() for v in values)


def load(directory: Path) -> Assignment:
    """Load and validate the assignment in ``directory``."""
    path = directory / "assignment.yaml"
    if not path.is_file():
        raise SpecError(f"{path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML: {exc}") from None
    r = _Reader(path)
    if not isinstance(raw, dict):
        raise r.fail("top level", "expected a mapping")
    version = r.get(raw, "schema_version", "", int)
    if version != SCHEMA_VERSION:
        raise r.fail("schema_version", f"expected {SCHEMA_VERSION}, got {version}")
    name = r.get(raw, "assignment", "", str)
    probes_path = directory / r.get(raw, "probes", "", str, "probes.py")
    if not probes_path.is_file():
        raise r.fail("probes", f"{probes_path} does not exist")
    limits = r.get(raw, "limits", "", dict, {})
    questions = []
    for i, q in enumerate(r.get(raw, "questions", "", list)):
        if not isinstance(q, dict):
            raise r.fail(f"questions[{i}]", "expected a mapping")
        questions.append(Question(r.get(q, "id", f"questions[{i}].", str),
                                  r.get(q, "title", f"questions[{i}].", str, "")))
    ids = {q.id for q in questions}
    checks: list[Check] = []
    for i, c in enumerate(r.get(raw, "checks", "", list)):
        checks.append(_check(r, c, f"checks[{i}].", ids))
    check_ids = [c.name for c in checks]
    for n in check_ids:
        if check_ids.count(n) > 1:
            raise r.fail("checks", f"duplicate check name {n!r}")
    data = None
    if "data" in raw:
        d = r.get(raw, "data", "", dict)
        data = DataSpec(
            name=r.get(d, "name", "data.", str), env=r.get(d, "env", "data.", str),
            url=r.get(d, "url", "data.", str, ""), sha256=r.get(d, "sha256", "data.", str, ""),
            holdout_fraction=r.get(d, "holdout_fraction", "data.", float, 0.1),
            holdout_salt=r.get(d, "holdout_salt", "data.", str, name),
            path=r.get(d, "path", "data.", str, ""),
            stage_as=r.get(d, "stage_as", "data.", str, ""))
        if not data.stage_as:
            data = replace(data, stage_as=data.path or f"data/{data.name}")
        if not 0 < data.holdout_fraction < 1:
            raise r.fail("data.holdout_fraction", "expected a number between 0 and 1")
    records = []
    for i, rec in enumerate(r.get(raw, "records", "", list, [])):
        if not isinstance(rec, dict):
            raise r.fail(f"records[{i}]", "expected a mapping")
        records.append(Record(r.get(rec, "name", f"records[{i}].", str),
                              r.get(rec, "probe", f"records[{i}].", str),
                              r.get(rec, "args", f"records[{i}].", dict, {})))
    requirements = _strings(r, raw, "requirements")
    for i, req in enumerate(requirements):
        # A project name first: no pip option ("--index-url ...") and no line break rides in.
        if not _REQUIREMENT.match(req) or "\n" in req:
            raise r.fail(f"requirements[{i}]", f"expected a pip requirement such as "
                                               f"'tqdm>=4.66', got {req!r}")
    preload = _strings(r, raw, "preload")
    for i, module in enumerate(preload):
        if not all(part.isidentifier() for part in module.split(".")):
            raise r.fail(f"preload[{i}]", f"expected a module name such as 'tqdm.auto', "
                                          f"got {module!r}")
    warmup_path: Path | None = None
    if "warmup" in raw:
        warmup_path = directory / r.get(raw, "warmup", "", str)
        if not warmup_path.is_file():
            raise r.fail("warmup", f"{warmup_path} does not exist")
    elif (directory / "warmup.py").is_file():
        warmup_path = directory / "warmup.py"
    return Assignment(
        requirements=requirements, preload=preload, warmup_path=warmup_path,
        records=tuple(records),
        name=name, title=r.get(raw, "title", "", str, name),
        notebook=r.get(raw, "notebook", "", str, f"{name}.ipynb"),
        directory=directory, probes_path=probes_path, questions=tuple(questions),
        checks=tuple(checks),
        cell_seconds=r.get(limits, "cell_seconds", "limits.", float, 60.0),
        notebook_seconds=r.get(limits, "notebook_seconds", "limits.", float, 600.0),
        probe_seconds=r.get(limits, "probe_seconds", "limits.", float, 10.0),
        memory_mb=r.get(limits, "memory_mb", "limits.", int, 3072),
        data=data, extra=r.get(raw, "extra", "", dict, {}),
    )


def _check(r: _Reader, c: Any, where: str, questions: set[str]) -> Check:
    if not isinstance(c, dict):
        raise r.fail(where.rstrip("."), "expected a mapping")
    known = {"name", "question", "visibility", "points", "probe", "args", "outputs", "tolerance",
             "hint", "kind", "requires_complete", "accuracy", "optional"}
    unknown = sorted(set(c) - known)
    if unknown:
        raise r.fail(f"{where}{unknown[0]}", "unknown field")
    question = r.get(c, "question", where, str)
    if question not in questions:
        raise r.fail(f"{where}question", f"{question!r} is not one of the questions listed")
    visibility = r.get(c, "visibility", where, str)
    if visibility not in _VISIBILITIES:
        raise r.fail(f"{where}visibility", f"expected visible or hidden, got {visibility!r}")
    kind = r.get(c, "kind", where, str, "compare")
    if kind not in _KINDS:
        raise r.fail(f"{where}kind", f"expected one of {', '.join(_KINDS)}, got {kind!r}")
    points = r.get(c, "points", where, float)
    if points < 0:
        raise r.fail(f"{where}points", "must not be negative")
    tol = r.get(c, "tolerance", where, dict, {})
    tolerance = Tolerance(r.get(tol, "rtol", f"{where}tolerance.", float, 1e-5),
                          r.get(tol, "atol", f"{where}tolerance.", float, 1e-6))
    outputs = r.get(c, "outputs", where, list, None)
    if outputs is not None and not all(isinstance(o, str) for o in outputs):
        raise r.fail(f"{where}outputs", "expected a list of output keys")
    acc = r.get(c, "accuracy", where, dict, {"zero_at": 0.0, "full_at": 1.0})
    zero_at = r.get(acc, "zero_at", f"{where}accuracy.", float)
    full_at = r.get(acc, "full_at", f"{where}accuracy.", float)
    if not 0 <= zero_at < full_at <= 1:
        raise r.fail(f"{where}accuracy", "need 0 <= zero_at < full_at <= 1")
    args = r.get(c, "args", where, dict, {})
    return Check(
        name=r.get(c, "name", where, str), question=question, visibility=visibility,
        points=points, probe=r.get(c, "probe", where, str),
        args={k: _arg(r, v, f"{where}args.{k}") for k, v in args.items()},
        outputs=tuple(outputs) if outputs is not None else None, tolerance=tolerance,
        hint=r.get(c, "hint", where, str, ""), kind=kind,
        requires_complete=r.get(c, "requires_complete", where, bool, kind == "accuracy"),
        accuracy=(zero_at, full_at),
        args_spec=json.dumps(args, sort_keys=True, default=repr),
        optional=r.get(c, "optional", where, bool, False),
    )


def _arg(r: _Reader, value: Any, where: str) -> Any:
    """A literal, or ``{array: normal|uniform|randint, shape: [...], seed: N, ...}``."""
    if not (isinstance(value, dict) and "array" in value):
        return value
    dist = value["array"]
    shape = value.get("shape")
    seed = value.get("seed")
    if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise r.fail(f"{where}.shape", "expected a list of non-negative integers")
    if not isinstance(seed, int):
        raise r.fail(f"{where}.seed", "expected an integer")
    rng = np.random.default_rng(seed)
    if dist == "normal":
        return (rng.standard_normal(shape) * float(value.get("scale", 1.0))).astype(np.float32)
    if dist == "uniform":
        low, high = float(value.get("low", 0.0)), float(value.get("high", 1.0))
        return rng.uniform(low, high, shape).astype(np.float32)
    if dist == "padded_tokens":
        # Rows of token ids, each real for lengths[i] steps then padded: sequences of varying
        # length as a model sees them in a batch.
        lengths, vocab, pad = value.get("lengths"), value.get("vocab"), value.get("pad")
        if not (isinstance(lengths, list) and len(shape) == 2 and len(lengths) == shape[0]
                and all(isinstance(n, int) and 1 <= n <= shape[1] for n in lengths)):
            raise r.fail(f"{where}.lengths", "expected one length (1..T) per row of shape [B, T]")
        if not (isinstance(vocab, int) and isinstance(pad, int)):
            raise r.fail(f"{where}.vocab", "padded_tokens needs integer vocab and pad")
        tokens = rng.integers(0, vocab, shape).astype(np.int64)
        for row, n in enumerate(lengths):
            tokens[row, n:] = pad
        return tokens
    if dist == "randint":
        low, high = int(value.get("low", 0)), int(value.get("high", 2))
        return rng.integers(low, high, shape).astype(np.int64)
    raise r.fail(f"{where}.array",
                 f"expected normal, uniform, randint or padded_tokens, got {dist!r}")


def find(root: Path, name: str) -> Assignment:
    directory = root / "assignments" / name
    if not directory.is_dir():
        known = sorted(p.parent.name for p in (root / "assignments").glob("*/assignment.yaml"))
        raise SpecError(f"unknown assignment {name!r} (known: {', '.join(known) or 'none'})")
    return load(directory)


def load_all(root: Path) -> list[Assignment]:
    return [load(p.parent) for p in sorted((root / "assignments").glob("*/assignment.yaml"))]
