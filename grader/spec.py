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
# The data set kinds grader.datasets ships (its registry), and the keys each takes besides
# _DATA_COMMON. Kept here, not there: the student package reads specs without grader.datasets.
_DATA_COMMON = ("kind", "name", "holdout_fraction", "holdout_salt", "stage_as", "item", "items",
                "probe_arg")
_DATA_FILES = ("env", "url", "sha256", "path", "holdout_path", "holdout_env")
DATA_KINDS: dict[str, tuple[str, ...]] = {
    "generated": ("module", "function", "seed", "args", "classes", "file"),
    "plugin": (*_DATA_FILES, "module", "class", "options"),
    "table": (*_DATA_FILES, "file", "label", "inputs", "classes"),
}


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
    """A data set the assignment stages into the sandbox (see ``grader.datasets``).

    ``kind`` chooses the loader; the fields after ``probe_arg`` belong to one kind or another
    (``DATA_KINDS`` says which) and keep their defaults elsewhere."""

    name: str
    kind: str = "table"
    env: str = ""
    url: str = ""
    sha256: str = ""
    holdout_fraction: float = 0.1
    holdout_salt: str = ""
    # The copy shipped with the assignment, relative to its folder ("" when none is shipped).
    path: str = ""
    # A private folder of held-out examples (same layout as ``path``) the instructor keeps
    # outside the course repository; with it nothing is split off ``path``. ~ and $VARS are
    # expanded, a relative path is the assignment folder's; ``holdout_env`` overrides it.
    holdout_path: str = ""
    holdout_env: str = ""
    # Where the notebook reads it, relative to the notebook's folder.
    stage_as: str = ""
    # How scores and messages count the data ("on 40 examples"); "" leaves it to the kind.
    item: str = ""
    items: str = ""
    # The probe's keyword that receives the held-out inputs; "" leaves it to the kind.
    probe_arg: str = ""
    # A Python file in the assignment's folder: the generator or the plug-in.
    module: str = ""
    function: str = "generate"
    seed: int = 0
    args: dict[str, Any] = field(default_factory=dict)
    # The file a table is read from, or a generated set is staged as.
    file: str = ""
    label: str = "label"
    inputs: str = "inputs"
    classes: tuple[str, ...] = ()
    class_name: str = ""
    options: dict[str, Any] = field(default_factory=dict)


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
    # The gradebook's keys, as written; grader.gradebook checks their content
    # (deadlines.DEADLINE_SHAPE, leaderboard.LEADERBOARD_SHAPE) before a run grades anything.
    deadline: dict[str, Any] | None = None
    leaderboard: tuple[dict[str, Any], ...] = ()

    @property
    def max_score(self) -> float:
        return float(sum(c.points for c in self.checks if not c.optional))

    @property
    def probes_source(self) -> str:
        return self.probes_path.read_text()

    def visible_only(self) -> Assignment:
        """The checks a student may run (and see the expected values of)."""
        # Accuracy needs the held-out labels, which only the instructor's grader has.
        return replace(self, checks=tuple(c for c in self.checks
                                          if shipped_to_students(c.visibility, c.kind)))

    def fingerprint(self) -> str:
        """Changes whenever the spec, the probes or any code of the assignment's folder (a
        warm-up script, a data-set plug-in or generator) changes: the caches key on it."""
        h = hashlib.sha256()
        h.update((self.directory / "assignment.yaml").read_bytes())
        h.update(self.probes_path.read_bytes())
        if self.warmup_path is not None:  # every submission starts from the state it leaves
            h.update(self.warmup_path.read_bytes())
        for path in sorted(self.directory.glob("*.py")):
            if path.is_file() and not path.is_symlink():
                h.update(path.name.encode() + b"\0" + path.read_bytes())
        return h.hexdigest()


def shipped_to_students(visibility: object, kind: object) -> bool:
    """Visible checks ship to students; accuracy checks never do: they need held-out labels
    only the instructor's grader has. The one rule, for parsed checks and raw YAML alike."""
    return visibility == "visible" and kind in ("compare", None)


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
    unknown, structure = _schema_problems(raw)
    if unknown:  # a typo first: it explains whatever else looks wrong
        raise r.fail(*unknown[0])
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
    data = _data(r, r.get(raw, "data", "", dict), name) if "data" in raw else None
    if (data is not None and data.holdout_fraction == 0 and not data.holdout_path
            and not data.holdout_env):
        for i, c in enumerate(checks):
            if c.kind == "accuracy":
                raise r.fail(f"checks[{i}]", f"accuracy check {c.name!r} needs held-out examples: "
                                             "data.holdout_fraction is 0 and no data.holdout_path")
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
    leaderboard = r.get(raw, "leaderboard", "", list, [])
    for i, entry in enumerate(leaderboard):
        if not isinstance(entry, dict):
            raise r.fail(f"leaderboard[{i}]", "expected a mapping")
    if structure:  # what the schema finds and the checks above did not
        raise r.fail(*structure[0])
    return Assignment(
        deadline=r.get(raw, "deadline", "", dict, None), leaderboard=tuple(leaderboard),
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


def _schema_problems(raw: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The schema's verdict (``grader.spec_schema``). The student wheel leaves the validator
    out: it reads only specs ``grader build`` wrote, which passed it then."""
    try:
        from grader import spec_schema
    except ImportError:
        return [], []
    return spec_schema.problems(raw)


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


def _data(r: _Reader, d: dict[str, Any], assignment: str) -> DataSpec:
    """The ``data:`` section: its kind first, then only the keys that kind takes."""
    kind = r.get(d, "kind", "data.", str)
    if kind not in DATA_KINDS:
        raise r.fail("data.kind", f"expected one of {', '.join(sorted(DATA_KINDS))}, got {kind!r}")
    allowed = (*_DATA_COMMON, *DATA_KINDS[kind])
    unknown = sorted(str(k) for k in set(d) - set(allowed))
    if unknown:
        raise r.fail(f"data.{unknown[0]}", f"unknown field for a {kind} data set (it takes "
                                           f"{', '.join(sorted(allowed))})")

    def text(key: str, default: Any = ...) -> str:
        value: str = r.get(d, key, "data.", str, default)
        return value

    def identifier(key: str, default: Any = ...) -> str:
        value = text(key, default)
        if value and not value.isidentifier():
            raise r.fail(f"data.{key}", f"expected a Python name, got {value!r}")
        return value

    def plain_file(key: str, suffixes: tuple[str, ...], default: Any = ...) -> str:
        # A bare file name: the bundles ship it beside the spec under the same name.
        value = text(key, default)
        if ("/" in value or "\\" in value or value.startswith(".")
                or not value.endswith(suffixes)):
            raise r.fail(f"data.{key}", f"expected the name of a {' or '.join(suffixes)} file "
                                        f"(no folder), got {value!r}")
        return value

    name = text("name")
    sha256 = text("sha256", "")
    if sha256 and not (len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)):
        raise r.fail("data.sha256", f"expected 64 lowercase hex digits, got {sha256!r}")
    private = text("holdout_path", "") or text("holdout_env", "")
    if private and "holdout_fraction" in d:
        raise r.fail("data.holdout_fraction", "not used with data.holdout_path or "
                                              "data.holdout_env (the private file is the held-out part)")
    # 0: nothing is held out (a student's copy of the checks, already only the visible part).
    fraction = 0.0 if private else r.get(d, "holdout_fraction", "data.", float, 0.1)
    if not 0 <= fraction < 1:
        raise r.fail("data.holdout_fraction", "expected a number from 0 up to (not including) 1")
    path = text("path", "")
    stage_as = text("stage_as", "") or path or f"data/{name}"
    parts = Path(stage_as).parts
    if Path(stage_as).is_absolute() or ".." in parts or not parts:
        raise r.fail("data.stage_as", f"expected a folder inside the notebook's, got {stage_as!r}")
    module = plain_file("module", (".py",)) if kind in ("generated", "plugin") else ""
    file = ""
    if kind == "table":
        file = plain_file("file", (".csv", ".npz"))
    elif kind == "generated":
        file = plain_file("file", (".csv", ".npz"), "train.npz")
    if "inputs" in d and file.endswith(".csv"):
        raise r.fail("data.inputs", "only an .npz table says which array holds its inputs (a CSV's inputs "
                                    "are its columns other than the label)")
    classes = r.get(d, "classes", "data.", list, [])
    for i, c in enumerate(classes):
        if not isinstance(c, str) or not c:
            raise r.fail(f"data.classes[{i}]", f"expected a non-empty string, got {c!r}")
        if classes.index(c) != i:
            raise r.fail(f"data.classes[{i}]", f"{c!r} is listed twice")
    return DataSpec(
        name=name, kind=kind, env=text("env", ""), url=text("url", ""), sha256=sha256,
        holdout_fraction=fraction, holdout_salt=text("holdout_salt", assignment), path=path,
        holdout_path=text("holdout_path", ""), holdout_env=text("holdout_env", ""),
        stage_as=stage_as, item=text("item", ""), items=text("items", ""),
        probe_arg=identifier("probe_arg", ""), module=module,
        function=identifier("function", "generate"),
        seed=r.get(d, "seed", "data.", int) if kind == "generated" else 0,
        args=r.get(d, "args", "data.", dict, {}), file=file, label=text("label", "label"),
        inputs=text("inputs", "inputs"), classes=tuple(classes),
        class_name=identifier("class") if kind == "plugin" else "",
        options=r.get(d, "options", "data.", dict, {}))


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
