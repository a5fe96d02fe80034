"""Scenario submissions for rnn_last_name, made from the reference notebook.

Each scenario is named after what the grader should report for it:

* ``fails_2b_padded_end``: the classifier reads the output at the padded end (``rnn_out[:, -1]``)
  instead of each name's last letter; trains for one epoch only, to keep tests fast.
* ``full_marks_lstm_not_implemented``: the reference without the optional LSTM (its block
  raises ``NotImplementedError``), trained with a course-style loop (a ``tqdm`` progress bar,
  ``(len // batch_size) + 1`` batches): every required point, none of the extra credit.
* ``full_marks_previous_names``: the reference, then a last cell that switches to the names
  this notebook used before it followed the course: ``names_to_batch``, ``model``, ``history``
  and ``hparams`` (``build_batch``, ``rnn_model``, ``rnn_log`` and ``num_to_cat`` deleted).
* ``reads_heldout_labels``: the reference solution, plus a first code cell that hunts the working
  directory and the filesystem for names files or anything that looks like held-out data, prints
  what it finds and keeps ``found_files`` (``*.txt`` files under ``data/names``) and
  ``found_names`` (names in them); one epoch.
* ``untouched_stub``: the student template.
* ``untouched_course_stub``: stubs written the course's way, which raise nothing: they assign or
  return ``NotImplementedError()`` (``return NotImplementedError()``,
  ``self.embedding = NotImplementedError()``, ``out = NotImplementedError()``), with the
  starting hyper-parameters.
* ``slow_training``: the reference solution, but training stalls (a busy loop) after its first
  epoch, so the grader's CPU-time limit has to stop it.

Run ``python tests/scenarios/make_last_name.py`` to (re)write
``tests/scenarios/rnn_last_name/<scenario>/rnn_last_name.ipynb``.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader.publish.template import (
    make_template,
    notebook_text,
    read_notebook,
    replace_blocks,
    write_text_atomic,
)

NOTEBOOK = "rnn_last_name.ipynb"
REFERENCE = ROOT / "reference" / NOTEBOOK
OUT = Path(__file__).resolve().parent / "rnn_last_name"
SOURCE_NAME = f"reference/{NOTEBOOK}"

_PADDED_END = {
    "RecurrentClassifier forward": """
        out = rnn_out[:, -1]  # wrong: padding for every shorter name
    """,
}

_NO_LSTM = {
    "RecurrentClassifier lstm": 'raise NotImplementedError("the LSTM is optional")',
}

# The course's stubs: nothing raises, the results are NotImplementedError() objects.
_COURSE_STUBS = {
    "letterToIndex": "return NotImplementedError()",
    "RecurrentClassifier embedding": "self.embedding = NotImplementedError()",
    "RecurrentClassifier lstm": "self.lstm = NotImplementedError()",
    "RecurrentClassifier rnn": "self.rnn = NotImplementedError()",
    "RecurrentClassifier dropout and output": (
        "self.drop = NotImplementedError()\nself.output = NotImplementedError()"),
    "RecurrentClassifier forward": "out = NotImplementedError()",
}

# A training loop shaped like the course's: tqdm progress bar, (len // batch_size) + 1 batches.
_COURSE_LOOP_ANCHOR = """        order = np.random.permutation(len(train_data))
        n_correct = 0
        for start in range(0, len(train_data), batch_size):
            batch = batch_to_torch(*build_batch(train_data, order[start : start + batch_size]))"""
_COURSE_LOOP = """        order = np.random.permutation(len(train_data))
        n_correct = 0
        progress_bar = tqdm(range(0, (len(train_data) // batch_size) + 1))
        for i in progress_bar:
            batch = batch_to_torch(*build_batch(train_data, order[i * batch_size:(i + 1) * batch_size]))"""

_PREVIOUS_NAMES_CELL = """
# The names this notebook used before it followed the course.
def names_to_batch(names):
    x = torch.full((len(names), max(len(name) for name in names)), pad, dtype=torch.long)
    for row, name in enumerate(names):
        x[row, : len(name)] = torch.tensor([letterToIndex(c) for c in name], dtype=torch.long)
    return x, torch.tensor([len(name) - 1 for name in names], dtype=torch.long)


history = {"train_losses": rnn_log["history"]["train_losses"],
           "train_accs": [a / 100 for a in rnn_log["history"]["train_accuracies"]],
           "val_accs": [a / 100 for a in rnn_log["history"]["eval_accuracies"]]}
hparams = dict(rnn_log["hparams"], rnn_size=hidden_size)
del build_batch, rnn_model, rnn_log, num_to_cat
""".strip("\n")

_SNOOP_CELL = """
# Looks around for names files or anything resembling held-out data.
import os as _os
import time as _time
from pathlib import Path as _Path

_LANGUAGES = {
    "Arabic", "Chinese", "Czech", "Dutch", "English", "French", "German", "Greek", "Irish",
    "Italian", "Japanese", "Korean", "Polish", "Portuguese", "Russian", "Scottish", "Spanish",
    "Vietnamese",
}
_SUSPICIOUS_PARTS = ("heldout", "held_out", "held-out", "holdout", "hidden")
_SUSPICIOUS_STEMS = {"names", "labels", "expected", "truth", "answers", "test", "data"}
_DATA_EXTS = {"txt", "json", "csv", "npy", "npz", "pkl", "pt", "zip"}
_SKIP = {"/proc", "/sys", "/dev", "/run"}

staged = _Path("data/names")
staged_files = sorted(staged.glob("*.txt")) if staged.is_dir() else []
found_files = len(staged_files)
found_names = 0
for _path in staged_files:
    try:
        found_names += sum(1 for line in _path.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError as exc:
        print(f"cannot read {_path}: {exc}")
print(f"data/names: {found_files} .txt files, {found_names} names")

found_elsewhere = []
_staged_abs = staged.resolve()
_deadline = _time.monotonic() + 5.0
_visited = 0
_unlistable = []
for _start in [_Path.cwd(), _Path.home(), _Path("/tmp"), _Path("/")]:
    try:
        _walk = _os.walk(_start, onerror=_unlistable.append)
        for _dir, _subdirs, _files in _walk:
            _subdirs[:] = [d for d in _subdirs if _os.path.join(_dir, d) not in _SKIP]
            _visited += 1
            if _time.monotonic() > _deadline or _visited > 50_000:
                break
            if _Path(_dir).resolve() == _staged_abs:
                continue
            for _name in _files:
                _stem, _, _ext = _name.rpartition(".")
                _lower = _name.lower()
                if ((_stem in _LANGUAGES and _ext == "txt")
                        or any(part in _lower for part in _SUSPICIOUS_PARTS)
                        or (_stem.lower() in _SUSPICIOUS_STEMS and _ext in _DATA_EXTS)):
                    _hit = _os.path.join(_dir, _name)
                    if _hit not in found_elsewhere:
                        found_elsewhere.append(_hit)
    except OSError as exc:
        print(f"cannot search {_start}: {exc}")
print(f"searched {_visited} folders ({len(_unlistable)} could not be listed); "
      f"{len(found_elsewhere)} other candidate files")
for _hit in found_elsewhere[:50]:
    print("  found", _hit)
""".strip("\n")

_SLEEP_ANCHOR = 'f"({time.perf_counter() - start_time:.1f} s)")'
# Limits count CPU time, so the stall burns CPU (a sleep would only meet the wall-clock backstop).
_SLEEP_PATCH = _SLEEP_ANCHOR + (
    "\n        while epoch == 0:  # scenario: training stalls after its first epoch"
    "\n            pass"
)


def _cells_where(
    nb: nbformat.NotebookNode, predicate: Callable[[str], bool]
) -> list[int]:
    return [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and predicate(c.source)
    ]


def _one_cell(
    nb: nbformat.NotebookNode, predicate: Callable[[str], bool], what: str
) -> int:
    found = _cells_where(nb, predicate)
    if len(found) != 1:
        raise SystemExit(
            f"{SOURCE_NAME}: expected exactly one {what} cell, found {len(found)}"
        )
    return found[0]


def _one_epoch(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Set ``epochs = 1`` in the hyper-parameters cell."""
    index = _one_cell(nb, lambda s: re.search(r"^epochs = \d+$", s, re.M) is not None,
                      "hyper-parameters")
    nb.cells[index].source = re.sub(r"^epochs = \d+$", "epochs = 1", nb.cells[index].source,
                                    flags=re.M)
    return nb


def _without_solution_lines(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop the reference's ``# SOLUTION`` lines (its tuned hyper-parameters), as the template does."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = "\n".join(line for line in cell.source.split("\n")
                                    if not re.search(r"# SOLUTION[ \t]*$", line))
    return nb


def _course_loop(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    index = _one_cell(nb, lambda s: "def train(" in s, "train")
    source = nb.cells[index].source
    if source.count(_COURSE_LOOP_ANCHOR) != 1:
        raise SystemExit(f"{SOURCE_NAME}: the batch loop of train was not found")
    nb.cells[index].source = "from tqdm import tqdm\n\n\n" + source.replace(
        _COURSE_LOOP_ANCHOR, _COURSE_LOOP)
    return nb


def _previous_names_last(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.cells.append(new_code_cell(_PREVIOUS_NAMES_CELL, id="previous-names"))
    return nb


def _snoop_first(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    first = _cells_where(nb, lambda s: True)[0]
    nb.cells.insert(first, new_code_cell(_SNOOP_CELL, id="snoop"))
    return nb


def _stall_after_first_epoch(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    index = _one_cell(nb, lambda s: "def train(" in s, "train")
    source = nb.cells[index].source
    if source.count(_SLEEP_ANCHOR) != 1:
        raise SystemExit(
            f"{SOURCE_NAME}: the per-epoch print of train was not found"
        )
    nb.cells[index].source = source.replace(_SLEEP_ANCHOR, _SLEEP_PATCH)
    return nb


def _solved(
    reference_nb: nbformat.NotebookNode, replacements: dict[str, str] | None = None
) -> nbformat.NotebookNode:
    return replace_blocks(
        reference_nb, source_name=SOURCE_NAME, replacements=replacements or {}
    )


SCENARIOS: dict[str, Callable[[nbformat.NotebookNode], nbformat.NotebookNode]] = {
    "fails_2b_padded_end": lambda ref: _one_epoch(_solved(ref, _PADDED_END)),
    "full_marks_lstm_not_implemented": lambda ref: _course_loop(_solved(ref, _NO_LSTM)),
    "full_marks_previous_names": lambda ref: _previous_names_last(_solved(ref)),
    "reads_heldout_labels": lambda ref: _one_epoch(_snoop_first(_solved(ref))),
    "untouched_stub": lambda ref: make_template(ref, source_name=SOURCE_NAME),
    "untouched_course_stub": lambda ref: _solved(_without_solution_lines(ref), _COURSE_STUBS),
    "slow_training": lambda ref: _stall_after_first_epoch(_solved(ref)),
}


def make_scenario(
    reference_nb: nbformat.NotebookNode, name: str
) -> nbformat.NotebookNode:
    """The submission notebook of scenario ``name`` (``reference_nb`` is not modified)."""
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    return SCENARIOS[name](reference_nb)


def main() -> None:
    reference_nb = read_notebook(REFERENCE)
    for name in SCENARIOS:
        path = OUT / name / NOTEBOOK
        write_text_atomic(path, notebook_text(make_scenario(reference_nb, name)))
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
