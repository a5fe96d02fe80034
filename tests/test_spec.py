"""Assignment spec validation: each error names the file and the field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from grader import spec
from grader.errors import SpecError
from tests.conftest import ROOT

GOOD = """\
schema_version: 1
assignment: demo
questions: [{id: "1.A"}]
checks:
  - name: c1
    question: "1.A"
    visibility: visible
    points: 2
    probe: p
    args: {x: {array: normal, shape: [2, 3], seed: 4}, n: 3}
"""


def write(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "demo"
    d.mkdir(exist_ok=True)
    (d / "assignment.yaml").write_text(text)
    (d / "probes.py").write_text("def p(ns, **kw):\n    return {}\n")
    return d


def error(tmp_path: Path, text: str) -> str:
    d = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        spec.load(d)
    prefix = f"{d}/assignment.yaml: "
    message = str(info.value)
    assert message.startswith(prefix)
    return message[len(prefix):]


def test_good_spec_loads_with_seeded_arrays(tmp_path: Path) -> None:
    a = spec.load(write(tmp_path, GOOD))
    c = a.checks[0]
    assert (a.name, a.max_score, c.tolerance) == ("demo", 2.0, spec.Tolerance(1e-5, 1e-6))
    np.testing.assert_array_equal(c.args["x"], np.random.default_rng(4).standard_normal((2, 3)).astype(np.float32))
    assert c.args["x"].dtype == np.float32 and c.args["n"] == 3


def test_the_real_assignments_load() -> None:
    a = spec.find(ROOT, "rnn_and_grad")
    assert a.max_score == 30.0
    assert {c.question for c in a.checks} == {"1.A", "1.B", "1.C"}
    assert {c.visibility for c in a.checks} == {"visible", "hidden"}
    assert "torch==2.13.0" in a.requirements and "ipywidgets" in a.preload


def test_requirements_preload_and_warmup(tmp_path: Path) -> None:
    d = write(tmp_path, GOOD + 'requirements: ["torch==2.13.0", "tqdm>=4.66"]\n'
                              "preload: [tqdm, tqdm.auto]\n")
    a = spec.load(d)
    assert a.requirements == ("torch==2.13.0", "tqdm>=4.66")
    assert (a.preload, a.warmup_path) == (("tqdm", "tqdm.auto"), None)
    assert spec.load(write(tmp_path, GOOD)).requirements == ()
    # warmup.py beside the spec is found without a key, and counts in the fingerprint.
    before = spec.load(d).fingerprint()
    (d / "warmup.py").write_text("import json\n")
    assert spec.load(d).warmup_path == d / "warmup.py"
    assert spec.load(d).fingerprint() != before
    (d / "warm.py").write_text("import json\n")
    assert spec.load(write(tmp_path, GOOD + "warmup: warm.py\n")).warmup_path == d / "warm.py"


@pytest.mark.parametrize("extra, message", [
    ("requirements: torch\n", "requirements: expected a list, got 'torch'"),
    ("requirements: [3]\n", "requirements[0]: expected a non-empty string, got 3"),
    ('requirements: ["--index-url=http://x"]\n',
     "requirements[0]: expected a pip requirement such as 'tqdm>=4.66', got '--index-url=http://x'"),
    ("preload: [tqdm auto]\n", "preload[0]: expected a module name such as 'tqdm.auto', got 'tqdm auto'"),
    ("preload: {tqdm: 1}\n", "preload: expected a list, got {'tqdm': 1}"),
    ("warmup: 3\n", "warmup: expected a string, got 3"),
])
def test_new_top_level_keys_are_checked(tmp_path: Path, extra: str, message: str) -> None:
    assert error(tmp_path, GOOD + extra) == message


def test_a_missing_warmup_script_is_an_error(tmp_path: Path) -> None:
    assert error(tmp_path, GOOD + "warmup: warm.py\n") == f"warmup: {tmp_path}/demo/warm.py does not exist"


@pytest.mark.parametrize("change, message", [
    (("points: 2", "points: two"), "checks[0].points: expected a number, got 'two'"),
    (("points: 2", "points: -1"), "checks[0].points: must not be negative"),
    (("visibility: visible", "visibility: secret"), "checks[0].visibility: expected visible or hidden, got 'secret'"),
    (('question: "1.A"\n    vis', 'question: "9.Z"\n    vis'), "checks[0].question: '9.Z' is not one of the questions listed"),
    (("    probe: p\n", ""), "checks[0].probe: missing"),
    (("seed: 4", "seed: x"), "checks[0].args.x.seed: expected an integer"),
    (("array: normal", "array: cauchy"), "checks[0].args.x.array: expected normal, uniform, randint or padded_tokens, got 'cauchy'"),
    (("schema_version: 1", "schema_version: 7"), "schema_version: expected 1, got 7"),
    (("    points: 2\n", "    points: 2\n    colour: red\n"), "checks[0].colour: unknown field"),
])
def test_errors_name_the_field(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    assert error(tmp_path, GOOD.replace(*change)) == message


def test_invalid_yaml(tmp_path: Path) -> None:
    assert error(tmp_path, "checks: [unclosed\n").startswith("invalid YAML: ")


def test_duplicate_check_names(tmp_path: Path) -> None:
    twice = GOOD + GOOD.split("checks:\n")[1]
    assert error(tmp_path, twice) == "checks: duplicate check name 'c1'"


def test_missing_file_and_unknown_assignment(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"assignment.yaml: no such file"):
        spec.load(tmp_path)
    with pytest.raises(SpecError, match=r"unknown assignment 'nope' \(known: .*rnn_and_grad"):
        spec.find(ROOT, "nope")


def test_request_keys_differ_when_seeds_differ(tmp_path: Path) -> None:
    a = spec.load(write(tmp_path, GOOD))
    b = spec.load(write(tmp_path, GOOD.replace("seed: 4", "seed: 5")))
    assert a.checks[0].request_key != b.checks[0].request_key
