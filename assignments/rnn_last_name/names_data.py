"""The last-name data set (a ``grader.datasets`` plug-in): ``<Language>.txt`` files of names.

The files are the course's (practical-pytorch's ``data/names``), one name a line; a name is
converted to ASCII the course's way and keeps only ``ALL_LETTERS``. ``data.sha256`` is
``folder_sha256`` of the ``<Language>.txt`` files, not of an archive, so the shipped copy and
any download are held to one real value.

The held-out names are chosen by a salted hash of the language and the *name string*, so a
held-out name is absent from its language's staged file (every copy of it), and the student's
process gets the names (never the labels) only when the grader asks its trained model for
predictions: ``probes.predict(ns, *, names)``.
"""

from __future__ import annotations

import string
import unicodedata
from pathlib import Path

import numpy as np

from grader.datasets.base import DataSet, Examples, files_sha256
from grader.datasets.base import split as split_examples
from grader.errors import InputError

ALL_LETTERS = string.ascii_letters + " .,;'"


def unicode_to_ascii(text: str) -> str:
    """Strip accents and keep only ``ALL_LETTERS`` (the course's conversion)."""
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn" and c in ALL_LETTERS)


def load_names(folder: Path) -> dict[str, list[str]]:
    """``{language: [ascii names]}`` from ``<Language>.txt`` files, languages sorted."""
    if not folder.is_dir():
        raise InputError(f"{folder}: names data folder not found")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise InputError(f"{folder}: no <Language>.txt files")
    data: dict[str, list[str]] = {}
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        names = [n for n in (unicode_to_ascii(line.strip()) for line in lines) if n]
        if not names:
            raise InputError(f"{path}: no names in this file")
        data[path.stem] = names
    return dict(sorted(data.items()))


def folder_sha256(folder: Path) -> str:
    """One checksum for a folder's ``*.txt`` files: their names and bytes, in sorted order."""
    return files_sha256(sorted(folder.glob("*.txt")))


def to_examples(data: dict[str, list[str]]) -> Examples:
    """Language by language, in file order: the order the held-out names are asked in."""
    languages = tuple(data)
    names = [name for language in languages for name in data[language]]
    labels = np.array([i for i, language in enumerate(languages) for _ in data[language]],
                      dtype=np.int64)
    return Examples(names, labels, languages)


def from_examples(examples: Examples) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {language: [] for language in examples.classes}
    for name, label in zip(examples.inputs, examples.labels):
        out[examples.classes[label]].append(str(name))
    return out


def split(data: dict[str, list[str]], *, salt: str, fraction: float
          ) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """(what the student sees, held-out (name, language) pairs), as the grader splits them."""
    visible, held = split_examples(to_examples(data), salt=salt, fraction=fraction,
                                   items=NamesData.items)
    return from_examples(visible), [(str(n), held.classes[label])
                                    for n, label in zip(held.inputs, held.labels)]


class NamesData(DataSet):
    item = "name"
    items = "names"
    probe_arg = "names"
    files_word = "names files"
    layout = "<Language>.txt files"

    def recognises(self, folder: Path) -> bool:
        return any(folder.glob("*.txt"))

    def checksum(self, folder: Path) -> str:
        return folder_sha256(folder)

    def data_files(self, folder: Path) -> list[Path]:
        return sorted(folder.glob("*.txt"))  # LICENSE and README.md ship as they are

    def load(self, folder: Path | None) -> Examples:
        assert folder is not None
        return to_examples(load_names(folder))

    def stage(self, visible: Examples, target: Path) -> None:
        """One ``<Language>.txt`` per language, its visible names in file order."""
        for language, names in from_examples(visible).items():
            (target / f"{language}.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
