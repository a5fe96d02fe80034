"""The data-set protocol: what every kind of data set does for a grading run, and its registry.

A data set is chosen by ``data.kind`` in the assignment YAML (``grader.spec.DATA_KINDS`` lists
the keys of each kind). Whatever the kind, one grading run

1. **locates** its files, first match wins: ``--data DIR``; the environment variable the YAML
   gives (``data.env``); the copy shipped with the assignment (``data.path``, checked against
   ``data.sha256``); a cached or fresh download of ``data.url``, verified against the same
   checksum (refused when none is pinned). A kind that reads no files (``generated``) skips
   this. Grading never touches the network when a folder is there;
2. **loads** every example with its label (``Examples``: inputs, class indices, class labels);
3. **splits** off the held-out examples by a salted hash of each example's label and input, so
   the split is the same on every machine and an example repeated in the data leaves with every
   copy of it (scored once);
4. **stages** the visible part where the notebook reads it (``data.stage_as``): held-out
   examples are never written there, so their labels never reach the student's process;
5. keeps the **truth** (``HeldOut``: the held-out labels and the class labels) in the grader;
   the probe receives only the held-out inputs, under the keyword the data set chooses.

A kind is a subclass of ``DataSet`` registered with ``@register("<kind>")``; an assignment's
own plug-in (``kind: plugin``) is a subclass in a Python file of the assignment's folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

from grader.errors import InputError, SpecError
from grader.grading.score import HeldOut
from grader.spec import Assignment, DataSpec


@dataclass(frozen=True)
class Examples:
    """Labelled examples: ``inputs`` (strings, or an array with one row per example), their
    ``labels`` (int64 indices into ``classes``) and the data set's class labels, in its order."""

    inputs: list[str] | np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(self.inputs):
            raise ValueError("labels: expected one integer class index per input")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(f"labels: expected indices into the {len(self.classes)} classes")
        object.__setattr__(self, "labels", labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: Sequence[int]) -> Examples:
        chosen = np.asarray(index, dtype=np.int64)
        if isinstance(self.inputs, np.ndarray):
            return Examples(self.inputs[chosen], self.labels[chosen], self.classes)
        return Examples([self.inputs[i] for i in chosen], self.labels[chosen], self.classes)

    def key(self, i: int) -> bytes:
        """What the held-out hash reads: the example's class label and its input."""
        value = self.inputs[i]
        raw: bytes = (value.encode() if isinstance(value, str)
                      else np.ascontiguousarray(value).tobytes())
        label: str = self.classes[int(self.labels[i])]
        return label.encode() + b"\0" + raw

    def digest(self) -> bytes:
        h = hashlib.sha256(json.dumps(list(self.classes)).encode())
        h.update(self.labels.tobytes())
        if isinstance(self.inputs, np.ndarray):
            h.update(f"{self.inputs.dtype.str}{self.inputs.shape}".encode())
            h.update(np.ascontiguousarray(self.inputs).tobytes())
        else:
            h.update("\0".join(self.inputs).encode())
        return h.digest()


def is_held_out(key: bytes, *, salt: str, fraction: float) -> bool:
    digest = hashlib.sha256(salt.encode() + b"\0" + key).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split(examples: Examples, *, salt: str, fraction: float, items: str = "examples"
          ) -> tuple[Examples, Examples]:
    """(what the student sees, what is held out), each in the examples' order.

    A held-out example leaves with every copy of it (a data set may repeat an example many
    times), so its label never reaches the student; it is scored once, not once per copy.
    """
    visible: list[int] = []
    held: list[int] = []
    seen: set[bytes] = set()
    for i in range(len(examples)):
        key = examples.key(i)
        if is_held_out(key, salt=salt, fraction=fraction):
            if key not in seen:
                held.append(i)
                seen.add(key)
        else:
            visible.append(i)
    present = set(examples.labels.tolist())
    kept = set(examples.labels[visible].tolist())
    empty = [c for j, c in enumerate(examples.classes) if j in present and j not in kept]
    if empty:
        raise InputError(f"holding out {fraction:.0%} leaves no {items} for {', '.join(empty)}")
    return examples.take(visible), examples.take(held)


def files_sha256(paths: Iterable[Path]) -> str:
    """One checksum for several files: each one's file name and bytes, in the order given."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "grader"


class DataSet(ABC):
    """One kind of data set. Subclasses implement ``load`` and ``stage``; kinds that read files
    also ``recognises`` and ``checksum``. The class attributes are the defaults of the words
    messages use; the YAML's ``item``, ``items`` and ``probe_arg`` override them."""

    # One held-out example and several, as messages count them ("on 40 examples").
    item: str = "example"
    items: str = "examples"
    # The probe's keyword that receives the held-out inputs.
    probe_arg: str = "examples"
    # False for a data set made by code rather than read from files.
    reads_files: bool = True
    # How messages name the files the checksum covers ("the data files differ from ...").
    files_word: str = "data files"
    # What an archive must hold ("the archive holds no data files").
    layout: str = "data files"
    # A download that is not a zip is this one file (None: only zips are accepted).
    single_file: str | None = None

    def __init__(self, assignment: Assignment) -> None:
        if assignment.data is None:
            raise ValueError(f"{assignment.name} has no data section")
        self.assignment = assignment
        self.spec: DataSpec = assignment.data
        self.directory = assignment.directory
        self.yaml = assignment.directory / "assignment.yaml"
        # The code that makes or reads the data (plug-in, generator): part of the fingerprint.
        self.source: Path | None = None
        spec = self.spec
        self.item = spec.item or self.item
        self.items = spec.items or (spec.item + "s" if spec.item else self.items)
        self.probe_arg = spec.probe_arg or self.probe_arg

    # -- the files -------------------------------------------------------------------------

    def recognises(self, folder: Path) -> bool:
        """Does ``folder`` hold this data set's files (not its subfolders)?"""
        return any(p.is_file() for p in folder.iterdir())

    def checksum(self, folder: Path) -> str:
        """What ``data.sha256`` pins for the files in ``folder``."""
        raise NotImplementedError(f"{type(self).__name__} reads no files")

    def data_files(self, folder: Path) -> list[Path]:
        """The files in ``folder`` that hold examples. The student template ships the others
        (a licence, a README) as they are; by default every file holds examples."""
        return sorted(p for p in folder.iterdir() if p.is_file())

    def find(self, root: Path) -> Path | None:
        """The first folder at or under ``root`` that holds the files (an archive may nest them)."""
        if not root.is_dir():
            return None
        for candidate in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
            if self.recognises(candidate):
                return candidate
        return None

    def locate(self, data_dir: Path | None, *, cache_dir: Path | None = None) -> Path | None:
        """The folder holding the files, by the rules in the module's docstring; None for a
        data set that reads none."""
        spec = self.spec
        if not self.reads_files:
            return None
        if data_dir is not None:
            return data_dir
        if spec.env and os.environ.get(spec.env):
            return Path(os.environ[spec.env])
        shipped = self.directory / spec.path if spec.path else None
        if shipped is not None and shipped.is_dir():
            if spec.sha256:
                got = self.checksum(shipped)
                if got != spec.sha256:
                    raise InputError(f"{shipped}: the {self.files_word} differ from the data.sha256 "
                                     f"pinned in {self.yaml} (restore them, or pin {got})")
            return shipped
        if spec.url:
            cache = (cache_dir or cache_root()) / spec.name
            return self.fetch(spec.url, sha256=spec.sha256, cache_dir=cache)
        where = f" (no copy at {shipped})" if shipped is not None else ""
        how = f"pass --data DIR or set {spec.env}" if spec.env else "pass --data DIR"
        raise InputError(f"{self.assignment.name} needs the {spec.name} data{where}: {how}")

    def locate_held_out(self) -> Path | None:
        """The instructor's private folder of held-out examples (``data.holdout_env``, else
        ``data.holdout_path``); None when the held-out part is split off the data instead."""
        spec = self.spec
        if spec.holdout_env and os.environ.get(spec.holdout_env):
            folder, given = Path(os.environ[spec.holdout_env]), f"${spec.holdout_env}"
        elif spec.holdout_path:
            folder = self.directory / os.path.expanduser(os.path.expandvars(spec.holdout_path))
            given = f"data.holdout_path in {self.yaml}"
        elif spec.holdout_env:
            raise InputError(f"{self.assignment.name} keeps its held-out {spec.name} data private: "
                             f"set {spec.holdout_env} to the folder holding it")
        else:
            return None
        if not folder.is_dir() or not self.recognises(folder):
            also = f"; or set {spec.holdout_env}" if spec.holdout_env and given[0] != "$" else ""
            raise InputError(f"{folder}: no held-out {spec.name} data there (from {given}{also})")
        return folder

    def fetch(self, url: str, *, sha256: str, cache_dir: Path) -> Path:
        """Download ``url`` once, unpack it, verify its files; returns their folder."""
        if not sha256:
            raise InputError(f"no checksum is pinned for {url}: set data.sha256 in the "
                             "assignment or give the data folder with --data")
        target = cache_dir / sha256[:16]
        found = self.find(target)
        if found is not None:
            return found
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            archive = Path(tmp) / "download"
            try:
                with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as f:
                    shutil.copyfileobj(response, f)
            except OSError as exc:
                raise InputError(f"could not download {url}: {exc}") from None
            unpacked = Path(tmp) / "unpacked"
            self._unpack(url, archive, unpacked)
            folder = self.find(unpacked)
            if folder is None:
                raise InputError(f"{url}: the archive holds no {self.layout}")
            got = self.checksum(folder)
            if got != sha256:
                raise InputError(f"{url}: checksum mismatch (expected sha256 {sha256} of the "
                                 f"{self.files_word}, got {got}); the download was discarded")
            os.replace(unpacked, target)
        found = self.find(target)
        assert found is not None
        return found

    def _unpack(self, url: str, archive: Path, unpacked: Path) -> None:
        try:
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise InputError(f"{url}: archive member {member!r} escapes its folder")
                z.extractall(unpacked)
        except zipfile.BadZipFile as exc:
            if self.single_file is None:
                raise InputError(f"{url}: not a zip archive ({exc})") from None
            unpacked.mkdir()
            os.replace(archive, unpacked / self.single_file)

    # -- the examples ----------------------------------------------------------------------

    @abstractmethod
    def load(self, folder: Path | None) -> Examples:
        """Every example with its label; ``folder`` is what ``locate`` returned."""

    @abstractmethod
    def stage(self, visible: Examples, target: Path) -> None:
        """Write ``visible`` into the folder ``target`` (exists), as the notebook reads it."""

    def code_digest(self) -> bytes:
        return self.source.read_bytes() if self.source is not None else b""


_D = TypeVar("_D", bound=Callable[[Assignment], DataSet])
KINDS: dict[str, Callable[[Assignment], DataSet]] = {}


def register(kind: str) -> Callable[[_D], _D]:
    """Make ``data.kind: <kind>`` build its data set with the decorated class or function."""
    def decorate(factory: _D) -> _D:
        KINDS[kind] = factory
        return factory
    return decorate


def open_dataset(assignment: Assignment) -> DataSet:
    spec = assignment.data
    assert spec is not None
    factory = KINDS.get(spec.kind)
    if factory is None:
        raise SpecError(f"{assignment.directory / 'assignment.yaml'}: data.kind: expected one of "
                        f"{', '.join(sorted(KINDS))}, got {spec.kind!r}")
    return factory(assignment)


def module_file(dataset: DataSet) -> Path:
    """The assignment's Python file ``data.module``, which must exist."""
    path = dataset.directory / dataset.spec.module
    if not path.is_file():
        raise SpecError(f"{dataset.yaml}: data.module: {path} does not exist")
    return path


@dataclass
class Prepared:
    """The data side of one grading run: what to stage, what to ask, what is true."""

    dataset: DataSet
    folder: Path | None
    visible: Examples
    held_out: Examples
    fingerprint: str
    stage_as: str
    probe_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    truth: dict[str, HeldOut] = field(default_factory=dict)

    def stage(self, workdir: Path) -> None:
        """Write the visible part under ``workdir/<stage_as>``."""
        target = workdir / self.stage_as
        target.mkdir(parents=True, exist_ok=True)
        self.dataset.stage(self.visible, target)


def private_held_out(assignment: Assignment, visible: Examples) -> Examples:
    """The instructor's private held-out examples, labelled by ``visible``'s classes. One
    that is also in ``visible`` is dropped: the student holds its label."""
    reader = open_dataset(assignment)  # its own instance: a kind may remember its source's layout
    folder = reader.locate_held_out()
    assert folder is not None
    private = reader.load(folder)
    unknown = sorted(set(private.classes[int(j)] for j in private.labels) - set(visible.classes))
    if unknown:
        raise InputError(f"{folder}: held-out {reader.items} of {', '.join(unknown)}: not a "
                         "class of the training data")
    index = {c: j for j, c in enumerate(visible.classes)}
    relabelled = Examples(private.inputs,
                          np.array([index[private.classes[int(j)]] for j in private.labels],
                                   dtype=np.int64), visible.classes)
    known = {visible.key(i) for i in range(len(visible))}
    kept, seen = [], set()
    for i in range(len(relabelled)):
        key = relabelled.key(i)
        if key not in known and key not in seen:
            kept.append(i)
            seen.add(key)
    if not kept:
        raise InputError(f"{folder}: every held-out {reader.item} there is also in the "
                         "training data")
    return relabelled.take(kept)


def prepare(assignment: Assignment, data_dir: Path | None, *, missing_ok: bool = False
            ) -> Prepared | None:
    """Locate, load and split the assignment's data set; None when it has none (or, with
    ``missing_ok``, when its files cannot be found or read)."""
    spec = assignment.data
    if spec is None:
        return None
    dataset = open_dataset(assignment)  # a broken spec or plug-in is never "missing"
    try:
        folder = dataset.locate(data_dir)
        examples = dataset.load(folder)
    except InputError:
        if missing_ok:
            return None
        raise
    accuracy = any(c.kind == "accuracy" for c in assignment.checks)
    if spec.holdout_path or spec.holdout_env:
        visible = examples
        held = (private_held_out(assignment, examples) if accuracy
                else examples.take([]))
    else:
        visible, held = split(examples, salt=spec.holdout_salt, fraction=spec.holdout_fraction,
                              items=dataset.items)
    h = hashlib.sha256(json.dumps([spec.kind, spec.holdout_salt, spec.holdout_fraction,
                                   spec.stage_as, dataset.probe_arg]).encode())
    h.update(examples.digest())
    h.update(held.digest())
    h.update(dataset.code_digest())
    prepared = Prepared(dataset, folder, visible, held, h.hexdigest()[:16], spec.stage_as)
    for check in assignment.checks:
        if check.kind == "accuracy":
            prepared.probe_args[check.request_key] = {dataset.probe_arg: held.inputs}
            prepared.truth[check.request_key] = HeldOut(held.labels, examples.classes,
                                                        dataset.item, dataset.items)
    return prepared
