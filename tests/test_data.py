"""Data sets: the names plug-in of rnn_last_name (loading, the held-out split, the checksummed
download), the generic kinds (table, generated), the data section's validation, accuracy."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

from grader import datasets, spec
from grader.errors import InputError, SpecError
from grader.grading.score import HeldOut, _accuracy, accuracy_points
from tests.conftest import NAMES_DATA, ROOT

PLUGIN = ROOT / "assignments" / "rnn_last_name" / "names_data.py"


@pytest.fixture(scope="module")
def names() -> ModuleType:
    """The plug-in module, as the grader imports it."""
    return datasets.load_module(PLUGIN)


def last_name() -> spec.Assignment:
    return spec.find(ROOT, "rnn_last_name")


def make_names(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


# -- the names plug-in --------------------------------------------------------------------------

def test_the_last_name_assignment_uses_its_plug_in() -> None:
    a = last_name()
    assert a.data is not None and (a.data.kind, a.data.module, a.data.class_name) == (
        "plugin", "names_data.py", "NamesData")
    dataset = datasets.open_dataset(a)
    assert (dataset.probe_arg, dataset.item, dataset.items) == ("names", "name", "names")
    assert dataset.source == PLUGIN


def test_missing_folder_is_named(tmp_path: Path, names: ModuleType) -> None:
    with pytest.raises(InputError) as info:
        names.load_names(tmp_path / "nope")
    assert str(info.value) == f"{tmp_path / 'nope'}: names data folder not found"


def test_empty_file_is_named(tmp_path: Path, names: ModuleType) -> None:
    folder = make_names(tmp_path / "names", {"Czech.txt": "Novak\n", "Greek.txt": "\n\n"})
    with pytest.raises(InputError) as info:
        names.load_names(folder)
    assert str(info.value) == f"{folder / 'Greek.txt'}: no names in this file"


def test_non_ascii_names_are_converted_and_languages_sorted(tmp_path: Path, names: ModuleType) -> None:
    folder = make_names(tmp_path / "names", {"Polish.txt": "Ślusarski\nŻuraw\n",
                                             "French.txt": "Béringer\nAllard\n", "Japanese.txt": "東京\nAbe\n"})
    loaded = names.load_names(folder)
    assert list(loaded) == ["French", "Japanese", "Polish"]
    assert loaded == {"French": ["Beringer", "Allard"], "Japanese": ["Abe"],
                      "Polish": ["Slusarski", "Zuraw"]}


def test_not_utf8_is_named(tmp_path: Path, names: ModuleType) -> None:
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "Irish.txt").write_bytes(b"O'Neill\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"Irish.txt: not UTF-8 text"):
        names.load_names(folder)


def test_real_data_set_and_split(names: ModuleType) -> None:
    loaded = names.load_names(NAMES_DATA)
    assert len(loaded) == 18 and sum(len(v) for v in loaded.values()) == 20050
    visible, held = names.split(loaded, salt="rnn_last_name", fraction=0.1)
    assert len(held) == len(set(held)) == 1779  # distinct (name, language) pairs
    for name, language in held:  # every copy of a held-out pair left the student's data
        assert name not in visible[language]
    assert sum(len(v) for v in visible.values()) + sum(loaded[lang].count(n) for n, lang in held) == 20050
    again = names.split(loaded, salt="rnn_last_name", fraction=0.1)
    assert again == (visible, held)
    other = names.split(loaded, salt="another course", fraction=0.1)
    assert other[1] != held


def test_holding_out_every_name_of_a_language_is_refused(names: ModuleType) -> None:
    with pytest.raises(InputError) as info:
        names.split({"Czech": ["Novak"], "Dutch": ["Smit"]}, salt="s", fraction=0.999)
    assert str(info.value) == "holding out 100% leaves no names for Czech, Dutch"


def archive(tmp_path: Path, names: ModuleType, folder: Path | None = None) -> tuple[Path, str]:
    """A zip of ``folder`` (default: two small files) as data/names/, and the checksum of its
    names files (what data.sha256 pins)."""
    if folder is None:
        folder = make_names(tmp_path / "src" / "data" / "names", {"Czech.txt": "Novak\n", "Dutch.txt": "Smit\n"})
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"data/names/{f.name}")
    return path, names.folder_sha256(folder)


def test_download_verifies_checksum_and_caches(tmp_path: Path, names: ModuleType) -> None:
    path, digest = archive(tmp_path, names)
    cache = tmp_path / "cache"
    dataset = datasets.open_dataset(last_name())
    folder = dataset.fetch(path.as_uri(), sha256=digest, cache_dir=cache)
    assert names.load_names(folder) == {"Czech": ["Novak"], "Dutch": ["Smit"]}
    path.unlink()  # cached: no second download
    assert dataset.fetch(path.as_uri(), sha256=digest, cache_dir=cache) == folder


def test_checksum_mismatch_discards_the_download(tmp_path: Path, names: ModuleType) -> None:
    path, digest = archive(tmp_path, names)
    wrong = "0" * 64
    with pytest.raises(InputError) as info:
        datasets.open_dataset(last_name()).fetch(path.as_uri(), sha256=wrong, cache_dir=tmp_path / "cache")
    assert str(info.value) == (f"{path.as_uri()}: checksum mismatch (expected sha256 {wrong} of "
                               f"the names files, got {digest}); the download was discarded")
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_archive_without_the_files_is_named(tmp_path: Path) -> None:
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("README.md", "nothing here")
    with pytest.raises(InputError) as info:
        datasets.open_dataset(last_name()).fetch(path.as_uri(), sha256="1" * 64, cache_dir=tmp_path / "c")
    assert str(info.value) == f"{path.as_uri()}: the archive holds no <Language>.txt files"
    (tmp_path / "plain.txt").write_text("not a zip")
    with pytest.raises(InputError, match=r"plain.txt: not a zip archive \(File is not a zip file\)"):
        datasets.open_dataset(last_name()).fetch((tmp_path / "plain.txt").as_uri(), sha256="1" * 64,
                                                 cache_dir=tmp_path / "c")


def test_no_pinned_checksum_refuses_to_download(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no checksum is pinned for file:///x.zip"):
        datasets.open_dataset(last_name()).fetch("file:///x.zip", sha256="", cache_dir=tmp_path)


def test_held_out_labels_stay_in_the_grader(tmp_path: Path, names: ModuleType) -> None:
    prepared = datasets.prepare(last_name(), NAMES_DATA)
    assert prepared is not None
    prepared.stage(tmp_path)
    staged = names.load_names(tmp_path / "data" / "names")
    held = list(zip(prepared.held_out.inputs, prepared.held_out.labels))
    assert len(held) == 1779
    assert all(name not in staged[prepared.held_out.classes[label]] for name, label in held)
    (key,) = prepared.probe_args
    assert set(prepared.probe_args[key]) == {"names"}  # names only, never labels
    assert prepared.probe_args[key]["names"] == list(prepared.held_out.inputs)
    truth = prepared.truth[key]
    assert len(truth.labels) == len(prepared.held_out)
    assert (truth.item, truth.items) == ("name", "names")


@pytest.mark.parametrize("accuracy, points", [
    (0.69, 0.0), (0.70, 0.0), (0.75, 5.0), (0.80, 10.0), (0.90, 10.0), (float("nan"), 0.0)])
def test_accuracy_score_edges(accuracy: float, points: float) -> None:
    assert accuracy_points(accuracy, zero_at=0.70, full_at=0.80, points=10) == points


def test_accuracy_maps_the_notebooks_category_order() -> None:
    check = next(c for c in last_name().checks if c.kind == "accuracy")
    truth = HeldOut(np.array([0, 1, 1, 2]), ("A", "B", "C"), "name", "names")
    got = {"predictions": np.array([2, 1, 1, 0]), "categories": ["C", "B", "A"]}
    passed, score, message = _accuracy(check, got, truth)
    assert (passed, score) == (True, 10.0)
    assert message == "held-out accuracy 100.0% on 4 names: 10 of 10 points (0 at 70%, full at 78%)"


# -- issue 10: the data ships with the project ------------------------------------------------

def test_the_shipped_copy_is_read_by_default_and_matches_the_pinned_checksum(
        monkeypatch: pytest.MonkeyPatch, names: ModuleType) -> None:
    monkeypatch.delenv("GRADER_NAMES_DATA", raising=False)
    a = last_name()
    assert a.data is not None
    shipped = ROOT / "assignments" / "rnn_last_name" / "data" / "names"
    assert datasets.locate(a, None) == shipped
    assert names.folder_sha256(shipped) == a.data.sha256
    assert (shipped / "LICENSE").read_text().startswith("The MIT License (MIT)")
    assert "practical-pytorch" in (shipped / "README.md").read_text()
    # The student template carries the visible part where its notebook reads it, and the
    # licence with it (tests/hostile/test_held_out.py: no held-out name is in it).
    template = ROOT / "student_template" / "data" / "names"
    shipped_spec = yaml.safe_load((ROOT / "student_template" / "checks" / "rnn_last_name"
                                   / "assignment.yaml").read_text())
    assert names.folder_sha256(template) == shipped_spec["data"]["sha256"] != a.data.sha256
    assert (template / "LICENSE").read_bytes() == (shipped / "LICENSE").read_bytes()


def test_a_changed_shipped_copy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           names: ModuleType) -> None:
    monkeypatch.delenv("GRADER_NAMES_DATA", raising=False)
    a = last_name()
    copy = tmp_path / "rnn_last_name"
    shutil.copytree(a.directory, copy)
    (copy / "data" / "names" / "Korean.txt").write_text("Kim\n", encoding="utf-8")
    moved = dataclasses.replace(a, directory=copy)
    with pytest.raises(InputError) as info:
        datasets.locate(moved, None)
    got = names.folder_sha256(copy / "data" / "names")
    assert str(info.value) == (
        f"{copy / 'data' / 'names'}: the names files differ from the data.sha256 pinned in "
        f"{copy / 'assignment.yaml'} (restore them, or pin {got})")
    assert datasets.locate(moved, NAMES_DATA) == NAMES_DATA  # --data still overrides it
    monkeypatch.setenv("GRADER_NAMES_DATA", str(NAMES_DATA))
    assert datasets.locate(moved, None) == NAMES_DATA  # and so does the environment


def test_no_copy_anywhere_says_how_to_give_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRADER_NAMES_DATA", raising=False)
    a = last_name()
    copy = tmp_path / "rnn_last_name"
    shutil.copytree(a.directory, copy, ignore=shutil.ignore_patterns("data"))
    moved = dataclasses.replace(a, directory=copy)
    with pytest.raises(InputError) as info:
        datasets.locate(moved, None)
    assert str(info.value) == (f"rnn_last_name needs the names data (no copy at "
                               f"{copy / 'data' / 'names'}): pass --data DIR or set GRADER_NAMES_DATA")
    assert datasets.prepare(moved, None, missing_ok=True) is None


def test_a_download_of_the_shipped_files_verifies_against_the_pinned_checksum(
        tmp_path: Path, names: ModuleType) -> None:
    a = last_name()
    assert a.data is not None
    path, digest = archive(tmp_path, names, NAMES_DATA)
    assert digest == a.data.sha256
    folder = datasets.open_dataset(a).fetch(path.as_uri(), sha256=a.data.sha256,
                                            cache_dir=tmp_path / "cache")
    assert names.load_names(folder) == names.load_names(NAMES_DATA)


# -- generic kinds ------------------------------------------------------------------------------

def make_assignment(root: Path, data: dict[str, Any], files: dict[str, str | bytes] | None = None,
                    name: str = "toy") -> Path:
    """A minimal assignment with one accuracy check, in ``root/assignments/<name>``."""
    folder = root / "assignments" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "probes.py").write_text("def predict(ns, **kw):\n    return {}\n")
    for filename, content in (files or {}).items():
        path = folder / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    (folder / "assignment.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "assignment": name, "questions": [{"id": "Q"}], "data": data,
        "checks": [{"name": "acc", "question": "Q", "visibility": "visible", "points": 4,
                    "probe": "predict", "kind": "accuracy",
                    "accuracy": {"zero_at": 0.5, "full_at": 0.9}}]}))
    return folder


GENERATOR = '''
import numpy as np

def generate(seed, n=200):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    return rng.standard_normal((n, 2)) + labels[:, None], labels, ("a", "b", "c")
'''
GENERATED = {"kind": "generated", "name": "points", "module": "gen.py", "seed": 3, "args": {"n": 200}}


def prepared_for(folder: Path, data_dir: Path | None = None) -> datasets.Prepared:
    prepared = datasets.prepare(spec.load(folder), data_dir)
    assert prepared is not None
    return prepared


def test_generated_split_is_deterministic_and_salted(tmp_path: Path) -> None:
    one = prepared_for(make_assignment(tmp_path / "1", GENERATED, {"gen.py": GENERATOR}))
    two = prepared_for(make_assignment(tmp_path / "2", GENERATED, {"gen.py": GENERATOR}))
    assert len(one.visible) + len(one.held_out) == 200 and 0 < len(one.held_out) < 40
    assert np.array_equal(one.held_out.inputs, two.held_out.inputs)
    assert one.fingerprint == two.fingerprint
    salted = prepared_for(make_assignment(tmp_path / "3", {**GENERATED, "holdout_salt": "other"},
                                          {"gen.py": GENERATOR}))
    assert not np.array_equal(salted.held_out.labels, one.held_out.labels)
    assert salted.fingerprint != one.fingerprint
    reseeded = prepared_for(make_assignment(tmp_path / "4", {**GENERATED, "seed": 4}, {"gen.py": GENERATOR}))
    assert reseeded.fingerprint != one.fingerprint
    (key,) = one.truth
    assert one.truth[key].classes == ("a", "b", "c")
    assert set(one.probe_args[key]) == {"examples"}  # the default keyword


def test_generated_held_out_examples_are_never_staged(tmp_path: Path) -> None:
    prepared = prepared_for(make_assignment(tmp_path, GENERATED, {"gen.py": GENERATOR}))
    prepared.stage(tmp_path / "work")
    staged = tmp_path / "work" / "data" / "points" / "train.npz"
    with np.load(staged, allow_pickle=False) as z:
        assert sorted(z.files) == ["classes", "inputs", "labels"]
        inputs, labels = z["inputs"], z["labels"]
        assert list(z["classes"]) == ["a", "b", "c"]
    assert np.array_equal(inputs, prepared.visible.inputs)
    assert np.array_equal(labels, prepared.visible.labels)
    held = np.asarray(prepared.held_out.inputs)
    assert not (inputs[:, None, :] == held[None, :, :]).all(axis=2).any()
    first = staged.read_bytes()
    prepared.stage(tmp_path / "again")  # byte for byte: a template built twice is unchanged
    assert (tmp_path / "again" / "data" / "points" / "train.npz").read_bytes() == first
    assert datasets.locate(spec.load(tmp_path / "assignments" / "toy"), None) is None  # no files


def test_generated_can_be_staged_as_csv(tmp_path: Path) -> None:
    folder = make_assignment(tmp_path, {**GENERATED, "file": "points.csv", "stage_as": "input"},
                             {"gen.py": GENERATOR})
    prepared = prepared_for(folder)
    prepared.stage(tmp_path / "work")
    lines = (tmp_path / "work" / "input" / "points.csv").read_text().splitlines()
    assert lines[0] == "x0,x1,label" and len(lines) == 1 + len(prepared.visible)
    assert lines[1].rsplit(",", 1)[1] in ("a", "b", "c")


def test_a_duplicated_example_leaves_with_every_copy(tmp_path: Path) -> None:
    rows = ["x,y,label"] + [f"{i % 7},{i % 5},{'odd' if i % 2 else 'even'}" for i in range(70)] * 3
    folder = make_assignment(tmp_path, {"kind": "table", "name": "pts", "file": "pts.csv",
                                        "path": "data"}, {"data/pts.csv": "\n".join(rows) + "\n"})
    prepared = prepared_for(folder)
    assert len(prepared.held_out) + len(prepared.visible) // 3 == 70  # each held out once
    assert len(prepared.visible) % 3 == 0


@pytest.mark.parametrize("generator, problem", [
    ("", "gen.py:generate: no such function"),
    ("def generate(seed):\n    return 1\n",
     "gen.py:generate: raised TypeError: generate() got an unexpected keyword argument 'n'"),
    ("def generate(seed, **kw):\n    return [1, 2]\n",
     "gen.py:generate: expected it to return (inputs, labels) or (inputs, labels, classes), got list"),
    ("import numpy as np\ndef generate(seed, **kw):\n    return np.zeros((3, 2)), np.array([0.5, 1, 0])\n",
     "gen.py:generate: labels: expected one integer class index per input (3), got float64 of shape (3,)"),
    ("import numpy as np\ndef generate(seed, **kw):\n    return np.array(['a', 'b']), np.array([0, 1])\n",
     "gen.py:generate: expected a numeric array of inputs, one row per example, got <U1 of shape (2,)"),
])
def test_a_broken_generator_is_named(tmp_path: Path, generator: str, problem: str) -> None:
    folder = make_assignment(tmp_path, GENERATED, {"gen.py": generator})
    with pytest.raises(SpecError) as info:
        datasets.prepare(spec.load(folder), None, missing_ok=True)  # a broken spec is not "missing"
    assert str(info.value) == f"{folder / 'assignment.yaml'}: data.function: {problem}"


def test_a_missing_generator_file_is_named(tmp_path: Path) -> None:
    folder = make_assignment(tmp_path, GENERATED)
    with pytest.raises(SpecError) as info:
        datasets.prepare(spec.load(folder), None)
    assert str(info.value) == f"{folder / 'assignment.yaml'}: data.module: {folder / 'gen.py'} does not exist"


IRIS = "petal,sepal,species\n" + "".join(
    f"{1 + i % 4 + (k * 3)}.{i % 10},{2 + i % 3}.5,{kind}\n"
    for k, kind in enumerate(("setosa", "versicolor", "virginica")) for i in range(40))


def test_table_csv_split_truth_and_staging(tmp_path: Path) -> None:
    data = {"kind": "table", "name": "iris", "file": "iris.csv", "label": "species", "path": "data",
            "item": "flower", "sha256": hashlib.sha256(IRIS.encode()).hexdigest()}
    folder = make_assignment(tmp_path, data, {"data/iris.csv": IRIS})
    prepared = prepared_for(folder)
    (key,) = prepared.truth
    truth = prepared.truth[key]
    assert truth.classes == ("setosa", "versicolor", "virginica")
    assert (truth.item, truth.items) == ("flower", "flowers")
    assert len(prepared.visible) + len(prepared.held_out) == 120
    held = prepared.probe_args[key]["examples"]
    assert isinstance(held, np.ndarray) and held.shape == (len(prepared.held_out), 2)
    prepared.stage(tmp_path / "work")
    staged = (tmp_path / "work" / "data" / "iris.csv").read_text().splitlines()
    assert staged[0] == "petal,sepal,species" and len(staged) == 1 + len(prepared.visible)
    staged_rows = {tuple(float(v) for v in line.split(",")[:2]) + (line.split(",")[2],)
                   for line in staged[1:]}
    for row, label in zip(held, truth.labels):
        assert (float(row[0]), float(row[1]), truth.classes[label]) not in staged_rows
    _, score, message = _accuracy(spec.load(folder).checks[0],
                                  {"predictions": truth.labels.copy()}, truth)
    assert message == (f"held-out accuracy 100.0% on {len(truth.labels)} flowers: 4 of 4 points "
                       "(0 at 50%, full at 90%)")


def test_table_csv_problems_are_named(tmp_path: Path) -> None:
    folder = make_assignment(tmp_path, {"kind": "table", "name": "t", "file": "t.csv", "path": "d",
                                        "label": "y"}, {"d/t.csv": "a,y\n1,x\nfoo,x\n"})
    with pytest.raises(InputError) as info:
        prepared_for(folder)
    assert str(info.value) == f"{folder / 'd' / 't.csv'}: line 3: 'foo' is not a number"
    (folder / "d" / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"t.csv: no column 'y' for the labels \(columns: a, b\)"):
        prepared_for(folder)
    data = {"kind": "table", "name": "t", "file": "t.csv", "path": "d", "label": "y",
            "classes": ["x"]}
    folder = make_assignment(tmp_path / "2", data, {"d/t.csv": "a,y\n1,x\n2,z\n"})
    with pytest.raises(InputError, match=r"t.csv: label 'z' is not one of data.classes \(x\)"):
        prepared_for(folder)


def test_table_npz_with_integer_and_string_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((150, 4)).astype(np.float32)
    y = np.arange(150) % 3
    for labels, string_labels in ((y, False), (np.array(["cat", "dog", "eel"])[y], True)):
        path = tmp_path / "src.npz"
        np.savez(path, features=x, target=labels, classes=np.array(["cat", "dog", "eel"]))
        where = tmp_path / str(string_labels)
        folder = make_assignment(where, {"kind": "table", "name": "pets", "file": "pets.npz",
                                         "inputs": "features", "label": "target", "path": "data"},
                                 {"data/pets.npz": path.read_bytes()})
        prepared = prepared_for(folder)
        (key,) = prepared.truth
        assert prepared.truth[key].classes == ("cat", "dog", "eel")
        assert prepared.probe_args[key]["examples"].dtype == np.float32
        prepared.stage(where / "work")
        with np.load(where / "work" / "data" / "pets.npz", allow_pickle=False) as z:
            assert sorted(z.files) == ["classes", "features", "target"]
            assert len(z["features"]) == len(prepared.visible)
            assert (z["target"].dtype.kind == "U") is string_labels
            staged = z["features"]
        held = np.asarray(prepared.held_out.inputs)
        assert not (staged[:, None, :] == held[None, :, :]).all(axis=2).any()


def test_table_checksums_the_file_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a,label\n1,x\n2,y\n3,x\n4,y\n"
    digest = hashlib.sha256(text.encode()).hexdigest()
    folder = make_assignment(tmp_path, {"kind": "table", "name": "t", "file": "t.csv", "path": "d",
                                        "sha256": digest}, {"d/t.csv": text})
    a = spec.load(folder)
    assert datasets.locate(a, None) == folder / "d"
    (folder / "d" / "t.csv").write_text(text + "5,x\n")
    with pytest.raises(InputError) as info:
        datasets.locate(a, None)
    got = hashlib.sha256((text + "5,x\n").encode()).hexdigest()
    assert str(info.value) == (f"{folder / 'd'}: the contents of t.csv differ from the data.sha256 "
                               f"pinned in {folder / 'assignment.yaml'} (restore them, or pin {got})")
    # A download that is the file itself, not a zip, is verified the same way and cached.
    shutil.rmtree(folder / "d")
    source = tmp_path / "t.csv"
    source.write_text(text)
    a = dataclasses.replace(a, data=dataclasses.replace(a.data, url=source.as_uri())) if a.data else a
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    found = datasets.locate(a, None)
    assert found is not None and (found / "t.csv").read_text() == text
    assert found.is_relative_to(tmp_path / "cache" / "grader" / "t")
    source.write_text(text + "6,y\n")
    with pytest.raises(InputError) as info:
        datasets.open_dataset(a).fetch(source.as_uri(), sha256=digest, cache_dir=tmp_path / "other")
    wrong = hashlib.sha256(source.read_bytes()).hexdigest()
    assert str(info.value) == (f"{source.as_uri()}: checksum mismatch (expected sha256 {digest} of "
                               f"the contents of t.csv, got {wrong}); the download was discarded")


def test_a_missing_table_says_how_to_give_it(tmp_path: Path) -> None:
    folder = make_assignment(tmp_path, {"kind": "table", "name": "t", "file": "t.csv"})
    with pytest.raises(InputError) as info:
        prepared_for(folder)
    assert str(info.value) == "toy needs the t data: pass --data DIR"
    (tmp_path / "given").mkdir()
    (tmp_path / "given" / "t.csv").write_text("a,label\n1,x\n2,y\n3,x\n4,y\n5,x\n6,y\n")
    assert len(prepared_for(folder, tmp_path / "given").visible) > 0


PLUGIN_SOURCE = '''
import numpy as np
from grader.datasets.base import DataSet, Examples

class Words(DataSet):
    item, items, probe_arg, reads_files = "word", "words", "words", False

    def load(self, folder):
        words = [f"w{i}" for i in range(self.spec.options["n"])]
        return Examples(words, np.array([i % 2 for i in range(len(words))]), ("even", "odd"))

    def stage(self, visible, target):
        (target / "words.txt").write_text("\\n".join(visible.inputs))
'''


def test_a_plug_in_in_the_assignment_folder(tmp_path: Path) -> None:
    data = {"kind": "plugin", "name": "words", "module": "words.py", "class": "Words",
            "options": {"n": 100}, "items": "tokens"}
    prepared = prepared_for(make_assignment(tmp_path, data, {"words.py": PLUGIN_SOURCE}))
    (key,) = prepared.truth
    assert set(prepared.probe_args[key]) == {"words"}
    assert prepared.truth[key].items == "tokens"  # the YAML's word wins
    prepared.stage(tmp_path / "work")
    staged = (tmp_path / "work" / "data" / "words" / "words.txt").read_text().split("\n")
    assert set(staged).isdisjoint(prepared.probe_args[key]["words"])
    assert len(staged) == len(prepared.visible)


def test_a_plug_in_without_its_class_is_named(tmp_path: Path) -> None:
    data = {"kind": "plugin", "name": "words", "module": "words.py", "class": "Nope"}
    folder = make_assignment(tmp_path, data, {"words.py": PLUGIN_SOURCE})
    with pytest.raises(SpecError) as info:
        datasets.prepare(spec.load(folder), None)
    assert str(info.value) == f"{folder / 'assignment.yaml'}: data.class: words.py defines no DataSet subclass 'Nope'"


# -- the data section's validation ------------------------------------------------------------

def test_the_kinds_spec_knows_are_the_registered_ones() -> None:
    assert set(spec.DATA_KINDS) == set(datasets.KINDS) == {"generated", "plugin", "table"}


@pytest.mark.parametrize("data, problem", [
    ({"kind": "tabel", "name": "t"}, "data.kind: expected one of generated, plugin, table, got 'tabel'"),
    ({"name": "t"}, "data.kind: missing"),
    ({"kind": "table", "file": "t.csv"}, "data.name: missing"),
    ({"kind": "table", "name": "t"}, "data.file: missing"),
    ({"kind": "table", "name": "t", "file": "t.xlsx"},
     "data.file: expected the name of a .csv or .npz file (no folder), got 't.xlsx'"),
    ({"kind": "table", "name": "t", "file": "t.csv", "inputs": "x"},
     "data.inputs: only an .npz table says which array holds its inputs (a CSV's inputs are its columns "
     "other than the label)"),
    ({"kind": "table", "name": "t", "file": "t.csv", "seed": 1},
     "data.seed: unknown field for a table data set (it takes classes, env, file, holdout_env, "
     "holdout_fraction, holdout_path, holdout_salt, inputs, item, items, kind, label, name, path, "
     "probe_arg, sha256, stage_as, url)"),
    ({"kind": "generated", "name": "g", "module": "g.py"}, "data.seed: missing"),
    ({"kind": "generated", "name": "g", "module": "sub/g.py", "seed": 0},
     "data.module: expected the name of a .py file (no folder), got 'sub/g.py'"),
    ({"kind": "generated", "name": "g", "module": "g.py", "seed": "zero"},
     "data.seed: expected an integer, got 'zero'"),
    ({"kind": "generated", "name": "g", "module": "g.py", "seed": 0, "url": "http://x"},
     "data.url: unknown field for a generated data set (it takes args, classes, file, function, "
     "holdout_fraction, holdout_salt, item, items, kind, module, name, probe_arg, seed, stage_as)"),
    ({"kind": "generated", "name": "g", "module": "g.py", "seed": 0, "classes": ["a", "a"]},
     "data.classes[1]: 'a' is listed twice"),
    ({"kind": "plugin", "name": "p", "module": "p.py"}, "data.class: missing"),
    ({"kind": "plugin", "name": "p", "module": "p.py", "class": "P", "probe_arg": "held out"},
     "data.probe_arg: expected a Python name, got 'held out'"),
    ({"kind": "plugin", "name": "p", "module": "p.py", "class": "P", "stage_as": "../up"},
     "data.stage_as: expected a folder inside the notebook's, got '../up'"),
    ({"kind": "plugin", "name": "p", "module": "p.py", "class": "P", "sha256": "abc"},
     "data.sha256: expected 64 lowercase hex digits, got 'abc'"),
    ({"kind": "plugin", "name": "p", "module": "p.py", "class": "P", "holdout_fraction": 1},
     "data.holdout_fraction: expected a number from 0 up to (not including) 1"),
    ({"kind": "plugin", "name": "p", "module": "p.py", "class": "P", "holdout_fraction": -0.1},
     "data.holdout_fraction: expected a number from 0 up to (not including) 1"),
    ({"kind": "generated", "name": "g", "module": "g.py", "seed": 0, "holdout_fraction": 0},
     "checks[0]: accuracy check 'acc' needs held-out examples: data.holdout_fraction is 0 and no "
     "data.holdout_path"),
    ({"kind": "plugin", "name": "p", "module": "p.py", "class": "P", "holdout_path": "~/p",
      "holdout_fraction": 0.2},
     "data.holdout_fraction: not used with data.holdout_path or data.holdout_env (the private "
     "file is the held-out part)"),
])
def test_data_section_errors_name_the_file_and_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     data: dict[str, Any], problem: str) -> None:
    make_assignment(tmp_path, data, name="x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as info:
        spec.load(Path("assignments/x"))
    assert str(info.value) == f"assignments/x/assignment.yaml: {problem}"


def test_data_section_defaults(tmp_path: Path) -> None:
    a = spec.load(make_assignment(tmp_path, {"kind": "generated", "name": "g", "module": "g.py",
                                             "seed": 5}))
    assert a.data is not None
    assert (a.data.stage_as, a.data.file, a.data.function, a.data.holdout_fraction,
            a.data.holdout_salt) == ("data/g", "train.npz", "generate", 0.1, "toy")


# -- accuracy, whatever the data set ----------------------------------------------------------

def test_generic_accuracy_counts_examples_and_checks_the_shape(tmp_path: Path) -> None:
    check = spec.load(make_assignment(tmp_path, GENERATED)).checks[0]
    truth = HeldOut(np.array([0, 1, 2, 1, 0]), ("a", "b", "c"))
    assert _accuracy(check, {"predictions": np.array([0, 1, 2, 0, 0])}, truth) == (
        False, 3.0, "held-out accuracy 80.0% on 5 examples: 3 of 4 points (0 at 50%, full at 90%)")
    assert _accuracy(check, {"predictions": np.array([0, 1])}, truth)[2] == (
        "predictions: expected one label per held-out example, shape (5,), got (2,)")
    # A class the data set lacks is wrong, not an error.
    got = {"predictions": np.array([0, 1, 2, 1, 0]), "categories": ["a", "b", "zebra"]}
    assert _accuracy(check, got, truth)[2].startswith("held-out accuracy 80.0% on 5 examples")
    assert _accuracy(check, {}, None)[2] == "no held-out labels were available to score accuracy"
