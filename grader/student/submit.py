"""What a student's notebook keeps and hands in: the log of check attempts, the upload file,
and the assignment's data fetched where the notebook reads it.

* ``<assignment>.attempts.jsonl`` beside the notebook: one JSON object a line per check run
  (time, question, score, points, a hash of the checked code). JSON lines, never pickled: the
  grader reads it back from a student's upload as data (``read_attempts``, size-capped).
* ``<assignment>_submission.zip``: the notebook, the visible-check log (``submission_log.json``,
  as ``grader.logfile`` serialises it) and the attempts log; one line says what to upload where.
* ``fetch_data``: the setup cell's download (pinned URL, each file's sha256), only when the
  files are absent.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import urllib.request
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grader.errors import InputError
from grader.logfile import SubmissionLog

ATTEMPTS_SUFFIX = ".attempts.jsonl"
MAX_ATTEMPTS_BYTES = 2_000_000  # what the grader reads of an uploaded attempts log
MAX_DOWNLOAD_BYTES = 200_000_000


def attempts_name(assignment: str) -> str:
    return f"{assignment}{ATTEMPTS_SUFFIX}"


def upload_name(assignment: str) -> str:
    return f"{assignment}_submission.zip"


def record_attempt(folder: Path, *, assignment: str, question: str, score: float,
                   max_score: float, code_sha256: str) -> dict[str, Any]:
    """Append one attempt; a folder that cannot be written (a read-only mount) loses it."""
    entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "unix_time": round(time.time(), 3), "assignment": assignment, "question": question,
             "score": score, "max_score": max_score, "code_sha256": code_sha256}
    try:
        with (folder / attempts_name(assignment)).open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
    except OSError:
        pass
    return entry


def read_attempts(text: str) -> list[dict[str, Any]]:
    """The attempts in a log's text, malformed lines skipped: it comes from a student."""
    out = []
    for line in text[:MAX_ATTEMPTS_BYTES].splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (isinstance(entry, dict) and isinstance(entry.get("question"), str)
                and isinstance(entry.get("score"), (int, float))
                and isinstance(entry.get("time"), str)):
            out.append({k: entry[k] for k in ("time", "question", "score", "max_score",
                                              "code_sha256") if k in entry})
    return out


def write_upload(folder: Path, *, assignment: str, notebook_name: str, notebook: bytes,
                 log: SubmissionLog | None) -> Path:
    """The upload file in ``folder``; returns its path."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(notebook_name, notebook)
        if log is not None:
            zf.writestr("submission_log.json", log.to_json())
        attempts = folder / attempts_name(assignment)
        if attempts.is_file():
            zf.writestr(attempts_name(assignment), attempts.read_bytes()[:MAX_ATTEMPTS_BYTES])
    path = folder / upload_name(assignment)
    from grader.files import atomic_write

    atomic_write(path, buf.getvalue())
    return path


def fetch_data(url: str, dest: str | Path, files: dict[str, str], *, quiet: bool = False) -> Path:
    """``dest`` holding ``files`` (name -> sha256): left alone when they are there, else taken
    from the zip at ``url`` and checked one by one. Raises ``InputError`` saying what is wrong."""
    folder = Path(dest)

    def ok(name: str) -> bool:
        path = folder / name
        return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == files[name]

    if all(ok(n) for n in files):
        return folder
    if not url:
        raise InputError(f"{folder}: the assignment's data files are missing and no download "
                         "link is configured: put them there (they come with the template)")
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            archive = response.read(MAX_DOWNLOAD_BYTES + 1)
    except OSError as exc:
        raise InputError(f"could not download {url}: {exc}") from None
    try:
        zf = zipfile.ZipFile(io.BytesIO(archive))
    except zipfile.BadZipFile:
        raise InputError(f"{url}: not a zip archive") from None
    found: dict[str, bytes] = {}
    for info in zf.infolist():
        name = info.filename.rsplit("/", 1)[-1]
        if name in files and not info.is_dir() and name not in found:
            content = zf.read(info)
            if hashlib.sha256(content).hexdigest() == files[name]:
                found[name] = content
    missing = sorted(set(files) - set(found))
    if missing:
        raise InputError(f"{url}: {len(missing)} of {len(files)} files missing or not the pinned "
                         f"ones (checksum differs): {', '.join(missing[:5])}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in found.items():
        (folder / name).write_bytes(content)
    if not quiet:
        print(f"data: {len(found)} files checked and saved in {folder}/")
    return folder
