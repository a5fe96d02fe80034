"""The last-name data set: find it, load it, hold part of it out, stage the rest for a student.

Where the data comes from, first match wins: ``--data DIR``; the environment variable the
assignment names (``data.env``); the copy shipped with the assignment (``data.path``, checked
against ``data.sha256``); a cached or fresh download of ``data.url``, verified against the same
checksum (refused when none is pinned). ``data.sha256`` is ``folder_sha256`` of the
``<Language>.txt`` files, not of an archive, so the shipped copy and any download are held to
one real value. Grading never touches the network when a folder is there.

The held-out names are chosen by a salted hash of the *name string*, so a held-out name is
absent from every language's staged file, and the student's process gets the names (never
the labels) only when the grader asks its trained model for predictions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import string
import tempfile
import unicodedata
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.errors import InputError
from grader.spec import Assignment

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


def is_held_out(name: str, language: str, *, salt: str, fraction: float) -> bool:
    digest = hashlib.sha256(f"{salt}\0{language}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split(data: dict[str, list[str]], *, salt: str, fraction: float
          ) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """(what the student sees, held-out (name, language) pairs).

    A held-out pair leaves with every copy of it (the files repeat some names many times), so
    its label never reaches the student; it is scored once, not once per copy.
    """
    visible: dict[str, list[str]] = {}
    held: list[tuple[str, str]] = []
    for language, names in data.items():
        visible[language] = []
        seen: set[str] = set()
        for name in names:
            if is_held_out(name, language, salt=salt, fraction=fraction):
                if name not in seen:
                    held.append((name, language))
                    seen.add(name)
            else:
                visible[language].append(name)
    empty = [lang for lang, names in visible.items() if not names]
    if empty:
        raise InputError(f"holding out {fraction:.0%} leaves no names for {', '.join(empty)}")
    return visible, held


def folder_sha256(folder: Path) -> str:
    """One checksum for a folder's ``*.txt`` files: their names and bytes, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.txt")):
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def fetch(url: str, *, sha256: str, cache_dir: Path) -> Path:
    """Download ``url`` once, unpack it, verify its names files; returns their folder."""
    if not sha256:
        raise InputError(f"no checksum is pinned for {url}: set data.sha256 in the assignment "
                         "or give the data folder with --data")
    target = cache_dir / sha256[:16]
    found = _names_folder(target)
    if found is not None:
        return found
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        archive = Path(tmp) / "archive.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as f:
                shutil.copyfileobj(response, f)
        except OSError as exc:
            raise InputError(f"could not download {url}: {exc}") from None
        unpacked = Path(tmp) / "unpacked"
        try:
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise InputError(f"{url}: archive member {member!r} escapes its folder")
                z.extractall(unpacked)
        except zipfile.BadZipFile as exc:
            raise InputError(f"{url}: not a zip archive ({exc})") from None
        names = _names_folder(unpacked)
        if names is None:
            raise InputError(f"{url}: the archive holds no <Language>.txt files")
        got = folder_sha256(names)
        if got != sha256:
            raise InputError(f"{url}: checksum mismatch (expected sha256 {sha256} of the names "
                             f"files, got {got}); the download was discarded")
        os.replace(unpacked, target)
    found = _names_folder(target)
    assert found is not None
    return found


def _names_folder(root: Path) -> Path | None:
    if not root.is_dir():
        return None
    for candidate in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        if any(candidate.glob("*.txt")):
            return candidate
    return None


def locate(assignment: Assignment, data_dir: Path | None, *, cache_dir: Path | None = None) -> Path:
    spec = assignment.data
    assert spec is not None
    if data_dir is not None:
        return data_dir
    if os.environ.get(spec.env):
        return Path(os.environ[spec.env])
    shipped = assignment.directory / spec.path if spec.path else None
    if shipped is not None and shipped.is_dir():
        if spec.sha256 and folder_sha256(shipped) != spec.sha256:
            raise InputError(f"{shipped}: the names files differ from the data.sha256 pinned in "
                             f"{assignment.directory / 'assignment.yaml'} (restore them, or pin "
                             f"{folder_sha256(shipped)})")
        return shipped
    if spec.url:
        cache = cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "grader"
        return fetch(spec.url, sha256=spec.sha256, cache_dir=cache / spec.name)
    where = f" (no copy at {shipped})" if shipped is not None else ""
    raise InputError(f"{assignment.name} needs the {spec.name} data{where}: "
                     f"pass --data DIR or set {spec.env}")


@dataclass
class Prepared:
    """The data side of one grading run: what to stage, what to ask, what is true."""

    folder: Path
    visible: dict[str, list[str]]
    held_out: list[tuple[str, str]]
    fingerprint: str
    stage_as: str
    probe_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    truth: dict[str, Any] = field(default_factory=dict)

    def stage(self, workdir: Path) -> None:
        """Write the visible names, one file per language, under ``workdir/<stage_as>``."""
        target = workdir / self.stage_as
        target.mkdir(parents=True, exist_ok=True)
        for language, names in self.visible.items():
            (target / f"{language}.txt").write_text("\n".join(names) + "\n", encoding="utf-8")


def prepare(assignment: Assignment, data_dir: Path | None, *, missing_ok: bool = False
            ) -> Prepared | None:
    spec = assignment.data
    assert spec is not None
    try:
        folder = locate(assignment, data_dir)
        data = load_names(folder)
    except InputError:
        if missing_ok:
            return None
        raise
    visible, held = split(data, salt=spec.holdout_salt, fraction=spec.holdout_fraction)
    languages = list(data)
    fingerprint = hashlib.sha256(repr((sorted(data.items()), spec.holdout_salt,
                                       spec.holdout_fraction)).encode()).hexdigest()[:16]
    prepared = Prepared(folder, visible, held, fingerprint,
                        stage_as=spec.stage_as)
    for check in assignment.checks:
        if check.kind == "accuracy":
            prepared.probe_args[check.request_key] = {"names": [n for n, _ in held]}
            prepared.truth[check.request_key] = {
                "labels": np.array([languages.index(lang) for _, lang in held], dtype=np.int64),
                "categories": languages}
    return prepared
