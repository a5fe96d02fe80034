"""A batch never stops for one student, and leaves nothing behind (issue 18, 3-9).

Fast tests of the grader's side of the channel, the interrupt path, the output-folder lock,
and the slow end-to-end ones: a second run on one folder, and ``kill -9`` then a rerun.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from grader import wire
from grader.grading import run as run_mod
from grader.grading.lock import LOCK_NAME, OutputLock, OutputLocked
from grader.sandbox import local
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.hostile
NB = "rnn_and_grad.ipynb"


def _frame(body: bytes) -> Any:
    a, b = socket.socketpair()
    with a, b:  # sent from a thread: the frame is larger than the socket's buffer
        def send() -> None:
            try:
                a.sendall(struct.pack(">I", len(body)) + body)
            except OSError:  # the reader refused the frame and closed its end
                pass

        sender = threading.Thread(target=send)
        sender.start()
        try:
            return wire.recv(b)
        finally:
            b.close()
            sender.join()


def test_a_deeply_nested_frame_is_a_wire_error_not_a_crash() -> None:
    with pytest.raises(wire.WireError, match="frame is nested too deeply"):
        _frame(b"[" * 200_000)
    with pytest.raises(wire.WireError, match="arrays or objects, more than the 500000 allowed"):
        _frame(b"[" + b"[]," * 600_000 + b"[]]")


def test_figures_are_capped_per_cell_and_per_submission() -> None:
    s = local._Session()
    big = "A" * (local.MAX_FIGURE_CHARS_PER_CELL // 2 + 1)
    assert len(s.keep_figures([big, big, big])) == 1  # the second would pass the cell's cap
    for _ in range(20):
        s.keep_figures([big])
    assert s.figure_chars <= local.MAX_FIGURE_CHARS_PER_SUBMISSION
    assert s.figures_dropped == 2 + 20 - (local.MAX_FIGURE_CHARS_PER_SUBMISSION // len(big) - 1)
    with pytest.raises(wire.WireError, match="malformed figure"):
        s.keep_figures([{"not": "a string"}])


def test_an_interrupt_waits_for_the_submission_in_flight(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """The CI failure: Python 3.11's ``Thread.join``, broken into by Ctrl-C, marks the running
    thread as stopped, and the run exited with that thread's staged copy still on disk."""
    finished: list[str] = []

    def slow(ctx: Any, folder: Path, executor: Any) -> Any:
        staged = tmp_path / f"staged-{folder.name}"
        staged.mkdir()
        try:
            time.sleep(1.0)  # still running when the interrupt comes
        finally:
            shutil.rmtree(staged)
            finished.append(folder.name)
        raise run_mod.Cancelled(folder.name)

    monkeypatch.setattr(run_mod, "grade_or_log_failure", slow)

    class Ctx:
        cancel = threading.Event()

    main = threading.main_thread().ident
    assert main is not None
    threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        run_mod.run_parallel(Ctx(), [tmp_path / "alice"], jobs=0,  # type: ignore[arg-type]
                             on_done=lambda r: None, executor=None)
    assert finished == ["alice"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_lock_names_the_run_that_holds_it(tmp_path: Path) -> None:
    with OutputLock(tmp_path / "grades"):
        with pytest.raises(OutputLocked) as info:
            OutputLock(tmp_path / "grades").acquire()
        assert f"pid {os.getpid()}" in str(info.value)
        assert str(info.value).startswith(f"{tmp_path / 'grades'}: another grader run is "
                                          "writing here (")
    assert not (tmp_path / "grades" / LOCK_NAME).exists()  # let go: nothing left
    OutputLock(tmp_path / "grades").acquire()  # and free again


def _grader(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    exe = Path(sys.executable).parent / "grader"
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **env})


@pytest.mark.slow
def test_a_second_run_on_one_folder_is_refused_naming_the_first(tmp_path: Path) -> None:
    subs, out = tmp_path / "submissions", tmp_path / "grades"
    (subs / "slow").mkdir(parents=True)
    shutil.copy(EXAMPLES / "hangs_in_1c" / NB, subs / "slow" / NB)
    first = _grader("run", str(subs), "--out", str(out), "-j", "1", env={})
    try:
        deadline = time.monotonic() + 60
        while not (out / LOCK_NAME).exists() or not (out / LOCK_NAME).read_text():
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.1)
        second = _grader("run", str(subs), "--out", str(out), "-j", "1", env={})
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 3, stderr
        assert (f"grader: error: {out}: another grader run is writing here (pid {first.pid}, "
                in stderr), stderr
        assert "wait for it to finish, or grade into another --out" in stderr
    finally:
        first.kill()
        first.communicate()


@pytest.mark.slow
def test_kill_9_then_a_rerun_leaves_no_file_and_no_cgroup(tmp_path: Path,
                                                          private_tmpdir: Path) -> None:
    from grader.sandbox import confine

    subs, tmp = tmp_path / "submissions", private_tmpdir
    (subs / "slow").mkdir(parents=True)
    shutil.copy(EXAMPLES / "hangs_in_1c" / NB, subs / "slow" / NB)
    env = {"TMPDIR": str(tmp)}
    first = _grader("run", str(subs), "--out", str(tmp_path / "grades"), "-j", "1", env=env)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith("grader-sub-") for p in tmp.iterdir()):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.1)
    time.sleep(1.0)  # the sandbox runs the notebook now
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert any(p.name.startswith("grader-sub-") for p in tmp.iterdir())  # what kill -9 leaves

    def ours() -> list[Path]:
        return [p for root in confine.cgroup_roots().values()
                for p in root.glob(f"grader-{first.pid}-*")]

    # The next run, of anything, clears the dead run's folders and cgroups (and with them any
    # sandbox still sleeping there) as its worker starts.
    (tmp_path / "other" / "nobody").mkdir(parents=True)
    again = _grader("run", str(tmp_path / "other"), "--out", str(tmp_path / "grades2"), "-j", "1",
                    "--assignment", "rnn_and_grad", env=env)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    assert sorted(os.listdir(tmp)) == []
    assert ours() == []
    # No sandbox of the dead run lives on: its worker ends them when the grader's end of the
    # control socket closes (without cgroups that is the only way).
    deadline = time.monotonic() + 10
    while _processes_in(tmp) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_in(tmp) == []


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working folder is (or was) below ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd.startswith(str(folder)):
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("options, message", [
    ("ro,size=1m", "Read-only file system"), ("size=64k", "No space left on device")])
def test_a_read_only_or_full_output_is_one_line_and_exit_3(tmp_path: Path, options: str,
                                                          message: str) -> None:
    out = tmp_path / "grades"
    out.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(out)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        if "ro" not in options:
            with open(out / "filler", "wb") as f:  # the disk is full before the run starts
                try:
                    f.write(b"x" * 2**20)
                except OSError:
                    pass
        subs = tmp_path / "submissions" / "nobody"
        subs.mkdir(parents=True)
        run = _grader("run", str(subs.parent), "--out", str(out), "--assignment", "rnn_and_grad",
                      env={})
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 3, stderr
        assert stderr.strip().count("\n") == 0 and stderr.startswith("grader: error: cannot write "), stderr
        assert message in stderr
    finally:
        subprocess.run(["umount", str(out)], check=True)


@pytest.mark.slow
def test_a_stopped_worker_is_killed_replaced_and_the_submission_graded_again(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from grader.execution import Limits

    monkeypatch.setattr(local, "CONTROL_SECONDS", 2.0)
    with local.Worker(limits=Limits(cell_seconds=5, notebook_seconds=10)) as worker:
        stopped = worker._proc.pid
        os.kill(stopped, signal.SIGSTOP)
        execution = worker.run(workdir=tmp_path, cells=["print(6 * 7)"], probes_source="",
                               requests={})
        assert [(c.status, c.stdout) for c in execution.cells] == [("ok", "42\n")]
        assert execution.events == (
            f"the grading worker (pid {stopped}) made no progress for 2 s (stopped or hung); "
            "killed it, started a new one and graded this submission again from its start",)
        assert worker._proc.pid != stopped and not Path(f"/proc/{stopped}").exists()
        # The new process serves the next submission as the first: no event, no restart.
        again = worker.run(workdir=tmp_path, cells=["1"], probes_source="", requests={})
        assert again.events == () and [c.status for c in again.cells] == ["ok"]


@pytest.mark.slow
def test_a_worker_lost_twice_on_one_submission_stops_the_run_saying_so(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from grader.errors import WorkerLost
    from grader.execution import Limits

    monkeypatch.setattr(local, "CONTROL_SECONDS", 2.0)
    replace = local.Worker._replace

    def replace_then_stop(self: local.Worker, generation: int) -> None:
        replace(self, generation)
        os.kill(self._proc.pid, signal.SIGSTOP)

    monkeypatch.setattr(local.Worker, "_replace", replace_then_stop)
    with local.Worker(limits=Limits(cell_seconds=5, notebook_seconds=10)) as worker:
        first = worker._proc.pid
        os.kill(first, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(WorkerLost) as lost:
            worker.run(workdir=tmp_path, cells=["1"], probes_source="", requests={})
        assert str(lost.value) == (
            f"the grading worker (pid {first}) made no progress for 2 s (stopped or hung); the "
            "new one made no progress for 2 s (stopped or hung) too, on the same submission")
        assert lost.value.exit_code == 5
        assert time.monotonic() - started < 30
    assert not Path(f"/proc/{first}").exists()
