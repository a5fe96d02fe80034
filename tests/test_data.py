"""The names data: loading, the held-out split, the checksummed download, accuracy scoring."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from grader import data, spec
from grader.errors import InputError
from grader.grading.score import accuracy_points
from tests.conftest import NAMES_DATA, ROOT


def make_names(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        data.load_names(tmp_path / "nope")
    assert str(info.value) == f"{tmp_path / 'nope'}: names data folder not found"


def test_empty_file_is_named(tmp_path: Path) -> None:
    folder = make_names(tmp_path / "names", {"Czech.txt": "Novak\n", "Greek.txt": "\n\n"})
    with pytest.raises(InputError) as info:
        data.load_names(folder)
    assert str(info.value) == f"{folder / 'Greek.txt'}: no names in this file"


def test_non_ascii_names_are_converted_and_languages_sorted(tmp_path: Path) -> None:
    folder = make_names(tmp_path / "names", {"Polish.txt": "Ślusarski\nŻuraw\n",
                                             "French.txt": "Béringer\nAllard\n", "Japanese.txt": "東京\nAbe\n"})
    loaded = data.load_names(folder)
    assert list(loaded) == ["French", "Japanese", "Polish"]
    assert loaded == {"French": ["Beringer", "Allard"], "Japanese": ["Abe"],
                      "Polish": ["Slusarski", "Zuraw"]}


def test_not_utf8_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "Irish.txt").write_bytes(b"O'Neill\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"Irish.txt: not UTF-8 text"):
        data.load_names(folder)


def test_real_data_set_and_split() -> None:
    loaded = data.load_names(NAMES_DATA)
    assert len(loaded) == 18 and sum(len(v) for v in loaded.values()) == 20050
    visible, held = data.split(loaded, salt="rnn_last_name", fraction=0.1)
    assert len(held) == len(set(held)) == 1779  # distinct (name, language) pairs
    for name, language in held:  # every copy of a held-out pair left the student's data
        assert name not in visible[language]
    assert sum(len(v) for v in visible.values()) + sum(loaded[lang].count(n) for n, lang in held) == 20050
    again = data.split(loaded, salt="rnn_last_name", fraction=0.1)
    assert again == (visible, held)
    other = data.split(loaded, salt="another course", fraction=0.1)
    assert other[1] != held


def archive(tmp_path: Path, folder: Path | None = None) -> tuple[Path, str]:
    """A zip of ``folder`` (default: two small files) as data/names/, and the checksum of its
    names files (what data.sha256 pins)."""
    if folder is None:
        folder = make_names(tmp_path / "src" / "data" / "names", {"Czech.txt": "Novak\n", "Dutch.txt": "Smit\n"})
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"data/names/{f.name}")
    return path, data.folder_sha256(folder)


def test_download_verifies_checksum_and_caches(tmp_path: Path) -> None:
    path, digest = archive(tmp_path)
    cache = tmp_path / "cache"
    folder = data.fetch(path.as_uri(), sha256=digest, cache_dir=cache)
    assert data.load_names(folder) == {"Czech": ["Novak"], "Dutch": ["Smit"]}
    path.unlink()  # cached: no second download
    assert data.fetch(path.as_uri(), sha256=digest, cache_dir=cache) == folder


def test_checksum_mismatch_discards_the_download(tmp_path: Path) -> None:
    path, digest = archive(tmp_path)
    wrong = "0" * 64
    with pytest.raises(InputError) as info:
        data.fetch(path.as_uri(), sha256=wrong, cache_dir=tmp_path / "cache")
    assert str(info.value) == (f"{path.as_uri()}: checksum mismatch (expected sha256 {wrong} of "
                               f"the names files, got {digest}); the download was discarded")
    assert list((tmp_path / "cache").iterdir()) == []


def test_no_pinned_checksum_refuses_to_download(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no checksum is pinned for file:///x.zip"):
        data.fetch("file:///x.zip", sha256="", cache_dir=tmp_path)


def test_held_out_labels_stay_in_the_grader(tmp_path: Path) -> None:
    a = spec.find(ROOT, "rnn_last_name")
    prepared = data.prepare(a, NAMES_DATA)
    assert prepared is not None
    prepared.stage(tmp_path)
    staged = data.load_names(tmp_path / "data" / "names")
    assert all(name not in staged[language] for name, language in prepared.held_out)
    (key,) = prepared.probe_args
    assert set(prepared.probe_args[key]) == {"names"}  # names only, never labels
    assert len(prepared.truth[key]["labels"]) == len(prepared.held_out)


@pytest.mark.parametrize("accuracy, points", [
    (0.69, 0.0), (0.70, 0.0), (0.75, 5.0), (0.80, 10.0), (0.90, 10.0), (float("nan"), 0.0)])
def test_accuracy_score_edges(accuracy: float, points: float) -> None:
    assert accuracy_points(accuracy, zero_at=0.70, full_at=0.80, points=10) == points


def test_accuracy_maps_the_notebooks_category_order() -> None:
    from grader.grading.score import _accuracy

    check = next(c for c in spec.find(ROOT, "rnn_last_name").checks if c.kind == "accuracy")
    truth = {"labels": np.array([0, 1, 1, 2]), "categories": ["A", "B", "C"]}
    got = {"predictions": np.array([2, 1, 1, 0]), "categories": ["C", "B", "A"]}
    passed, score, message = _accuracy(check, got, truth)
    assert (passed, score) == (True, 10.0)
    assert message == "held-out accuracy 100.0% on 4 names: 10 of 10 points (0 at 70%, full at 78%)"


# -- issue 10: the data ships with the project ------------------------------------------------

def test_the_shipped_copy_is_read_by_default_and_matches_the_pinned_checksum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRADER_NAMES_DATA", raising=False)
    a = spec.find(ROOT, "rnn_last_name")
    assert a.data is not None
    shipped = ROOT / "assignments" / "rnn_last_name" / "data" / "names"
    assert data.locate(a, None) == shipped
    assert data.folder_sha256(shipped) == a.data.sha256
    assert (shipped / "LICENSE").read_text().startswith("The MIT License (MIT)")
    assert "practical-pytorch" in (shipped / "README.md").read_text()
    # The student template carries the same files where its notebook reads them.
    template = ROOT / "student_template" / "data" / "names"
    assert data.folder_sha256(template) == a.data.sha256


def test_a_changed_shipped_copy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRADER_NAMES_DATA", raising=False)
    import dataclasses
    import shutil

    a = spec.find(ROOT, "rnn_last_name")
    copy = tmp_path / "rnn_last_name"
    shutil.copytree(a.directory, copy)
    (copy / "data" / "names" / "Korean.txt").write_text("Kim\n", encoding="utf-8")
    moved = dataclasses.replace(a, directory=copy)
    with pytest.raises(InputError) as info:
        data.locate(moved, None)
    got = data.folder_sha256(copy / "data" / "names")
    assert str(info.value) == (
        f"{copy / 'data' / 'names'}: the names files differ from the data.sha256 pinned in "
        f"{copy / 'assignment.yaml'} (restore them, or pin {got})")
    assert data.locate(moved, NAMES_DATA) == NAMES_DATA  # --data still overrides it
    monkeypatch.setenv("GRADER_NAMES_DATA", str(NAMES_DATA))
    assert data.locate(moved, None) == NAMES_DATA  # and so does the environment


def test_a_download_of_the_shipped_files_verifies_against_the_pinned_checksum(tmp_path: Path) -> None:
    a = spec.find(ROOT, "rnn_last_name")
    assert a.data is not None
    path, digest = archive(tmp_path, NAMES_DATA)
    assert digest == a.data.sha256
    folder = data.fetch(path.as_uri(), sha256=a.data.sha256, cache_dir=tmp_path / "cache")
    assert data.load_names(folder) == data.load_names(NAMES_DATA)
