"""Held-out accuracy scores a model, not a table, and the template holds no held-out name
(issue 18, 2).

A notebook that carries the data set (it is public) and patches its trained model's forward
with a name -> language lookup scored 97.3% "held-out accuracy" against 79.0% for the honest
reference. The probe now evaluates a fresh instance of the notebook's own class loaded with
the trained weights only, so the lookup is left behind and the two score the same.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from grader import datasets, spec
from grader.grading.run import GradingSession
from grader.submission import student_dirs
from tests.conftest import NAMES_DATA, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.hostile]
NB = "rnn_last_name.ipynb"

LOOKUP = '''
import json, types, torch
TABLE = json.loads(%r)
cat_to_num = {v: k for k, v in num_to_cat.items()}
honest_forward = rnn_model.forward

def lookup_forward(self, x, last_pos):
    logits = honest_forward(x, last_pos).detach().clone()
    for i in range(x.shape[0]):
        name = "".join(all_letters[j] for j in x[i, : int(last_pos[i]) + 1].tolist())
        if name in TABLE:
            logits[i] = -1e9
            logits[i, cat_to_num[TABLE[name]]] = 1e9
    return logits

rnn_model.forward = types.MethodType(lookup_forward, rnn_model)
model = rnn_model
'''


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    a = dataclasses.replace(spec.find(ROOT, "rnn_last_name"), cell_seconds=60)
    every = datasets.open_dataset(a).load(NAMES_DATA)  # held-out part included: it is public
    table = {name: every.classes[int(label)] for name, label in zip(every.inputs, every.labels)}
    base = tmp_path_factory.mktemp("held_out")
    subs = base / "submissions"
    nb = nbformat.read(ROOT / "reference" / NB, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(LOOKUP % json.dumps(table)))
    (subs / "lookup").mkdir(parents=True)
    nbformat.write(nb, subs / "lookup" / NB)
    with GradingSession(root=ROOT, assignment=a, out_dir=base / "grades", data_dir=NAMES_DATA,
                        jobs=2) as session:
        results = session.grade(student_dirs(subs), jobs=2)
    return {r.log.student: r.log.as_dict() for r in results}


def _accuracy(log: dict[str, Any]) -> str:
    return next(c["message"] for c in log["checks"] if c["name"] == "2C_heldout_accuracy")


def test_a_lookup_scores_no_better_than_the_honest_model(logs: dict[str, Any]) -> None:
    # The reference's own figure (tests/test_last_name.py): the same weights, the same answers.
    honest = "held-out accuracy 79.0% on 1779 names: 10 of 10 points (0 at 70%, full at 78%)"
    assert _accuracy(logs["lookup"]) == honest
    assert logs["lookup"]["score"] == 23.0  # as the reference: 20 points and 3 extra credit


def test_the_student_template_holds_no_held_out_name() -> None:
    """The template shipped the whole data set, its 10% held out included (byte-identical to
    the assignment's copy): the labels of every held-out name were in the students' hands."""
    a = spec.find(ROOT, NB.removesuffix(".ipynb"))
    prepared = datasets.prepare(a, NAMES_DATA)
    assert prepared is not None and len(prepared.held_out) > 1000
    reader = datasets.open_dataset(a)
    template = reader.load(ROOT / "student_template" / "data" / "names")
    def pairs(e: datasets.Examples) -> set[tuple[str, str]]:
        return {(e.classes[int(label)], str(x)) for x, label in zip(e.inputs, e.labels)}
    assert pairs(template) == pairs(prepared.visible)
    assert not pairs(template) & pairs(prepared.held_out)
