"""The hostile-submission suite: one batch with every hostile notebook and two honest controls.

For each case: it earns exactly what it earned honestly, the batch completes, the controls'
scores are unchanged, no stray process remains, and nothing outside the sandbox changed.
Run as root (CI) and as an unprivileged user (see docs/security.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import threading
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from grader.reports import feedback
from tests.hostile.cases import CASES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SECRET = "grader-test-secret-" + hashlib.sha256(str(os.getpid()).encode()).hexdigest()[:12]
MARKER = "hostile-marker-" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:10]

pytestmark = pytest.mark.hostile


def _tree_digest(*folders: Path) -> str:
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path).encode() + path.read_bytes())
    return h.hexdigest()


def _processes() -> dict[int, str]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                pass
    return out


class Listener:
    """A TCP listener on 127.0.0.1 that records whether anybody connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.sock.close()


class UnixListener(Listener):
    """A stand-in for a root-only daemon: a socket file (0600, in a 0700 folder) or, with
    ``abstract``, an abstract socket; records whether anybody connected."""

    def __init__(self, folder: Path | None = None, abstract: str = "") -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        if folder is not None:
            folder.mkdir(mode=0o700)
            self.path = str(folder / "priv.sock")
            self.sock.bind(self.path)
            os.chmod(self.path, 0o600)
        else:
            self.path = abstract
            self.sock.bind("\0" + abstract)
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()


# A student whose folder's name is not UTF-8 (an archive from another system): graded like
# anyone, and the summary and every feedback page still written.
ODD_NAME = os.fsdecode(b"control_odd_\xff_name")


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from grader.submission import student_dirs
    from grader import spec
    from grader.grading.run import GradingSession

    base = tmp_path_factory.mktemp("hostile")
    submissions, grades = base / "submissions", base / "grades"
    canary = base / "canary-must-not-exist"
    listener = Listener()
    daemon = UnixListener(base / "daemon")
    abstract = UnixListener(abstract=f"grader-test-{MARKER}")
    values = {"@@ROOT@@": str(ROOT), "@@SUBMISSIONS@@": str(submissions), "@@GRADES@@": str(grades),
              "@@PORT@@": str(listener.port), "@@CANARY@@": str(canary), "@@MARKER@@": MARKER,
              "@@UNIX_SOCKET@@": daemon.path, "@@ABSTRACT@@": abstract.path}
    for name in CASES:
        text = (HERE / "notebooks" / f"{name}.ipynb").read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        (submissions / name).mkdir(parents=True)
        (submissions / name / "rnn_and_grad.ipynb").write_text(text)
    links = submissions / "symlinks_not_followed"
    os.symlink(ROOT / "reference" / "rnn_and_grad.ipynb", links / "linked_reference.ipynb")
    os.symlink(ROOT, links / "linked_root")
    examples = ROOT / "examples" / "submissions"
    shutil.copytree(examples / "full_marks_alt_layout", submissions / "control_correct")
    shutil.copytree(examples / "fails_1c_sum_not_mean", submissions / "control_buggy")
    shutil.copytree(examples / "fails_1c_sum_not_mean", submissions / ODD_NAME)
    classmate = (submissions / "control_correct" / "rnn_and_grad.ipynb").read_bytes()

    protected = _tree_digest(ROOT / "reference", ROOT / "assignments", ROOT / "grader")
    before = _processes()
    os.environ["GRADER_TEST_SECRET"] = SECRET
    started = time.perf_counter()
    try:
        # A 4 s CPU budget per cell (the reference needs < 1 s) keeps the wall-clock backstop,
        # 4x that, short for the cases that only it can stop.
        a = dataclasses.replace(spec.find(ROOT, "rnn_and_grad"), cell_seconds=4.0)
        with GradingSession(root=ROOT, assignment=a, out_dir=grades, jobs=2) as session:
            results = session.grade(student_dirs(submissions), jobs=2)
        pages = feedback.write_pages(grades, [r.log for r in results],
                                     titles={q.id: q.title for q in a.questions})
    finally:
        os.environ.pop("GRADER_TEST_SECRET", None)
        listener.close()
        daemon.close()
        abstract.close()
    time.sleep(0.5)
    strays = {pid: cmd for pid, cmd in _processes().items()
              if pid not in before and pid != os.getpid() and MARKER in cmd or
              (pid not in before and "grader.sandbox.worker" in cmd
               # Workers of other runs on this machine (another checkout, a bench) are not ours.
               and cmd.startswith(sys.executable + "\0"))}
    return {"logs": {r.log.student: r.log.as_dict() for r in results}, "grades": grades, "canary": canary,
            "connections": listener.connections, "strays": strays, "classmate": classmate,
            "unix_connections": daemon.connections + abstract.connections, "pages": pages,
            "submissions": submissions, "protected": protected,
            "seconds": time.perf_counter() - started}


def test_the_batch_completed_and_controls_are_unchanged(batch: dict[str, Any]) -> None:
    logs = batch["logs"]
    assert set(logs) == set(CASES) | {"control_correct", "control_buggy", ODD_NAME}
    assert logs["control_correct"]["score"] == 30.0
    assert logs["control_buggy"]["score"] == 20.0
    assert logs[ODD_NAME]["score"] == 20.0
    summary = (batch["grades"] / "summary.csv").read_text().splitlines()
    assert len(summary) == len(CASES) + 4
    assert "control_odd_\\udcff_name,20.0,30.0" in "\n".join(summary)  # escaped, not lost


def test_every_student_has_a_feedback_page(batch: dict[str, Any]) -> None:
    """Surrogates in a student's output, error or folder name cost no page (issue 18, 5)."""
    assert len(batch["pages"]) == len(batch["logs"])
    for student in batch["logs"]:
        page = (batch["grades"] / student / "feedback.html").read_text()
        assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>"), student
    odd = (batch["grades"] / "surrogate_in_error" / "feedback.html").read_text()
    assert "\\ud800" in odd


def test_no_unix_socket_outside_the_sandbox(batch: dict[str, Any]) -> None:
    """Issue 18, 1: neither a root-only socket file nor an abstract socket can be reached."""
    assert batch["unix_connections"] == 0
    stdout = "".join(c["stdout"] for c in batch["logs"]["no_unix_socket"]["cells"])
    assert stdout.count("refused") == 2 and "connected" not in stdout, stdout
    assert "Operation not permitted" in stdout


@pytest.mark.parametrize("name, detail", [
    ("deep_frame_on_channel", "frame is nested too deeply"),
    ("forged_figures", "a result for cell 15, which is not the cell running"),
    ("heartbeats_do_not_extend", "cell 17 announced out of order")])
def test_a_corrupted_channel_is_this_students_could_not_grade(batch: dict[str, Any], name: str,
                                                              detail: str) -> None:
    """Issue 18, 3, 6, 7: whatever the child writes on the channel ends its own grading,
    at once (no heartbeat moves a deadline), and stores nothing it forged."""
    log = batch["logs"][name]
    messages = [e["message"] for e in log["errors"] if e["kind"] == "sandbox"]
    assert any(f"the submission corrupted the grader's channel ({detail}" in m for m in messages), messages
    assert all(c["stdout"] != "forged" for c in log["cells"])
    figures = batch["grades"] / name / "figures"
    assert not figures.exists() or sum(f.stat().st_size for f in figures.iterdir()) < 8 * 2**20
    assert log["timings"]["total_seconds"] < 25  # the heartbeat's 30 s sleep was not waited for


def test_malformed_notebook_is_refused_by_name(batch: dict[str, Any]) -> None:
    """Issue 18, 4: a cell without source, a number as source, a cell without a type."""
    [error] = batch["logs"]["malformed_cells"]["errors"]
    assert error["kind"] == "invalid_notebook"
    assert error["message"].startswith("rnn_and_grad.ipynb: not a valid notebook (cells/")


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_case_earns_only_what_it_earned_honestly(batch: dict[str, Any], name: str) -> None:
    log = batch["logs"][name]
    case = CASES[name]
    assert log["score"] == case.score, json.dumps(log["errors"], indent=1)
    kinds = {e["kind"] for e in log["errors"]}
    assert case.error_kinds <= kinds, kinds
    on_disk = json.loads((batch["grades"] / name / "submission_log.json").read_text())
    assert on_disk["score"] == case.score and on_disk["student"] == name


def test_no_stray_process_remains(batch: dict[str, Any]) -> None:
    assert batch["strays"] == {}


def test_nothing_outside_the_sandbox_changed(batch: dict[str, Any]) -> None:
    assert not batch["canary"].exists()
    assert _tree_digest(ROOT / "reference", ROOT / "assignments", ROOT / "grader") == batch["protected"]
    classmate = batch["submissions"] / "control_correct" / "rnn_and_grad.ipynb"
    assert classmate.read_bytes() == batch["classmate"]
    assert not (batch["submissions"] / "fake_log_ignored" / "submission_log.json").exists()
    assert not (ROOT / "reference" / "pwned").exists()
    assert not Path(f"/dev/shm/{MARKER}").exists() and not Path(f"/var/tmp/{MARKER}").exists()


def test_no_network_connection_was_made(batch: dict[str, Any]) -> None:
    assert batch["connections"] == 0
    stdout = "".join(c["stdout"] for c in batch["logs"]["no_network"]["cells"])
    assert "connected" not in stdout.replace("refused", "") and "refused" in stdout


def test_the_graders_environment_did_not_leak(batch: dict[str, Any]) -> None:
    for log in batch["logs"].values():
        assert SECRET not in json.dumps(log)
    stdout = "".join(c["stdout"] for c in batch["logs"]["environment_scrubbed"]["cells"])
    assert "'HOME'" in stdout  # it did print its environment: just nothing of ours


def test_output_flood_is_capped(batch: dict[str, Any]) -> None:
    size = (batch["grades"] / "capped_output_flood" / "submission_log.json").stat().st_size
    assert size < 200_000


def test_fake_log_was_overwritten_by_the_real_one(batch: dict[str, Any]) -> None:
    log = json.loads((batch["grades"] / "fake_log_ignored" / "submission_log.json").read_text())
    assert log["score"] == 0.0 and log["max_score"] == 30.0 and len(log["checks"]) == 14


def test_no_protection_was_off(batch: dict[str, Any]) -> None:
    """As root every protection is on; as a user only cgroups may be off (and it says so)."""
    from tests.conftest import NESTED_ROOT_OFF

    allowed = {"cgroups"} if os.geteuid() != 0 else set(NESTED_ROOT_OFF)
    for log in batch["logs"].values():
        off = set(log.get("sandbox", {}).get("off", []))
        assert off <= allowed, off
