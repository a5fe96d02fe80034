"""``kind: table``: examples in one CSV or NPZ file, a label per example.

A CSV has a header; the ``label`` column (default ``label``) holds each row's class label and
every other column is a number, one input feature. An NPZ holds an ``inputs`` array (first
axis: examples) and a ``label`` array of class labels (strings) or class indices (integers),
``data.inputs`` and ``data.label`` being the arrays' keys. The classes, in order:
``data.classes`` if given (every label must be one of them), else an NPZ's ``classes`` array,
else the distinct labels sorted (numerically when they are integers). ``data.sha256`` is the
sha256 of the file itself (what ``sha256sum`` prints). The visible rows are staged as the same
kind of file, under the same name, with the same columns or arrays.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from grader.datasets.base import DataSet, Examples, register
from grader.errors import InputError, SpecError
from grader.spec import Assignment

_EPOCH = (1980, 1, 1, 0, 0, 0)


def class_order(found: list[str], given: tuple[str, ...], where: str) -> tuple[str, ...]:
    """The classes: ``given`` (which must cover ``found``), else ``found`` sorted."""
    if given:
        unknown = sorted(set(found) - set(given))
        if unknown:
            raise InputError(f"{where}: label {unknown[0]!r} is not one of data.classes "
                             f"({', '.join(given)})")
        return given
    distinct = sorted(set(found))
    if all(c.lstrip("-").isdigit() for c in distinct):
        distinct.sort(key=int)
    return tuple(distinct)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``numpy.savez``, but byte-identical for the same arrays (no timestamps), so a staged or
    shipped copy only changes when the data do; never pickles."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            z.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH), member.getvalue())
    path.write_bytes(buf.getvalue())


def write_csv(path: Path, header: list[str], label_column: int, examples: Examples) -> None:
    """One row per example: its features as Python writes floats, its class label in
    ``label_column``."""
    inputs = np.asarray(examples.inputs, dtype=np.float64).reshape(len(examples), -1)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for row, label in zip(inputs, examples.labels):
            cells = [repr(float(v)) for v in row]
            cells.insert(label_column, examples.classes[label])
            writer.writerow(cells)


def read_csv(path: Path, label: str, classes: tuple[str, ...]
             ) -> tuple[Examples, list[str], int]:
    """(the examples, the header, the label column's index)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a CSV file ({exc})") from None
    rows = [r for r in rows if r]
    if not rows:
        raise InputError(f"{path}: empty (expected a header and one row per example)")
    header = [c.strip() for c in rows[0]]
    if label not in header:
        raise InputError(f"{path}: no column {label!r} for the labels (columns: "
                         f"{', '.join(header)})")
    at = header.index(label)
    features = [c for c in header if c != label]
    if not features:
        raise InputError(f"{path}: no input columns besides {label!r}")
    values: list[list[float]] = []
    found: list[str] = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"{path}: line {n}: {len(row)} cells, the header has {len(header)}")
        found.append(row[at].strip())
        try:
            values.append([float(c) for i, c in enumerate(row) if i != at])
        except ValueError:
            bad = next(c for i, c in enumerate(row) if i != at and not _is_number(c))
            raise InputError(f"{path}: line {n}: {bad!r} is not a number") from None
    if not values:
        raise InputError(f"{path}: no rows below the header")
    order = class_order(found, classes, str(path))
    labels = np.array([order.index(c) for c in found], dtype=np.int64)
    return Examples(np.array(values, dtype=np.float64), labels, order), header, at


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_npz(path: Path, inputs: str, label: str, classes: tuple[str, ...]
             ) -> tuple[Examples, bool]:
    """(the examples, whether the labels were strings)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file without pickles ({exc})") from None
    for key in (inputs, label):
        if key not in arrays:
            raise InputError(f"{path}: no array {key!r} (arrays: {', '.join(sorted(arrays))})")
    x, y = arrays[inputs], arrays[label]
    if x.dtype.kind not in "biuf" or x.ndim < 1:
        raise InputError(f"{path}: {inputs}: expected a numeric array, one row per example")
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(f"{path}: {label}: expected one label per row of {inputs} "
                         f"({len(x)}), got shape {y.shape}")
    if y.dtype.kind == "U":
        found = [str(v) for v in y]
        order = class_order(found, classes, str(path))
        return Examples(x, np.array([order.index(c) for c in found], dtype=np.int64), order), True
    if y.dtype.kind not in "iu":
        raise InputError(f"{path}: {label}: expected class labels (strings) or class indices "
                         f"(integers), got {y.dtype}")
    if classes:
        order = classes
    elif "classes" in arrays and arrays["classes"].dtype.kind == "U":
        order = tuple(str(c) for c in arrays["classes"])
    else:
        order = tuple(str(i) for i in range(int(y.max()) + 1 if y.size else 0))
    if y.size and (y.min() < 0 or y.max() >= len(order)):
        raise InputError(f"{path}: {label}: class indices must lie in 0..{len(order) - 1}")
    return Examples(x, y.astype(np.int64), order), False


def write_npz_examples(path: Path, examples: Examples, inputs: str, label: str,
                       string_labels: bool) -> None:
    labels: np.ndarray = (np.array([examples.classes[i] for i in examples.labels], dtype=str)
                          if string_labels else examples.labels)
    write_npz(path, {inputs: np.asarray(examples.inputs), label: labels,
                     "classes": np.array(examples.classes, dtype=str)})


@register("table")
class TableData(DataSet):
    def __init__(self, assignment: Assignment) -> None:
        super().__init__(assignment)
        self.file = self.spec.file
        self.files_word = f"contents of {self.file}"
        self.layout = self.file
        self.single_file = self.file
        # How the source was laid out, so the staged copy is laid out the same way.
        self._header: list[str] = []
        self._label_column = 0
        self._string_labels = False

    def recognises(self, folder: Path) -> bool:
        return (folder / self.file).is_file()

    def checksum(self, folder: Path) -> str:
        return hashlib.sha256((folder / self.file).read_bytes()).hexdigest()

    def data_files(self, folder: Path) -> list[Path]:
        return [folder / self.file]

    def load(self, folder: Path | None) -> Examples:
        assert folder is not None
        path = folder / self.file
        if not path.is_file():
            raise InputError(f"{path}: data file not found")
        if self.file.endswith(".csv"):
            examples, self._header, self._label_column = read_csv(path, self.spec.label,
                                                                  self.spec.classes)
            return examples
        examples, self._string_labels = read_npz(path, self.spec.inputs, self.spec.label,
                                                 self.spec.classes)
        return examples

    def stage(self, visible: Examples, target: Path) -> None:
        if self.file.endswith(".csv"):
            write_csv(target / self.file, self._header, self._label_column, visible)
        else:
            write_npz_examples(target / self.file, visible, self.spec.inputs, self.spec.label,
                               self._string_labels)


def check_inputs(value: Any, where: str) -> np.ndarray:
    """A numeric array with one row per example (what the sandbox can receive)."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf" or array.ndim < 1:
        raise SpecError(f"{where}: expected a numeric array of inputs, one row per example, "
                        f"got {array.dtype} of shape {array.shape}")
    return array
