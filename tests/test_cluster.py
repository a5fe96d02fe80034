"""Grading on a Dask cluster (issue 13): a LocalCluster of 2 worker processes on loopback.

Same logs as a local run, a worker killed mid-batch, an unreachable scheduler, workers whose
sandbox is unconfined, and what a task carries (never an expected value).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from tests.conftest import EXAMPLES, ROOT, grader_cli

distributed = pytest.importorskip("distributed")

from grader import spec, wire  # noqa: E402
from grader.sandbox import confine as sandbox  # noqa: E402
from grader.grading.plan import limits_for, requests_for  # noqa: E402
from grader.submission import read_notebook, stage, student_dirs  # noqa: E402
from grader.execution import CellOutcome, Execution, ProbeAnswer  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR) as lc:
        yield lc


def _comparable(log: dict[str, Any]) -> dict[str, Any]:
    """A log without what may differ from machine to machine: timings, cgroup paths, and the
    paths a protection's note names (which secrets a worker knows of is its own)."""
    log = json.loads(json.dumps(log))
    log.pop("timings")
    for cell in log["cells"]:
        cell.pop("seconds")
    log["sandbox"]["protections"] = {k: v.split(":")[0].split(" (")[0]
                                     for k, v in log["sandbox"]["protections"].items()}
    return log


# -- without a cluster ------------------------------------------------------------------------

def test_dask_is_not_imported_without_a_scheduler() -> None:
    code = ("import sys, grader.cli, grader.grading.run, grader.grading.pipeline; "
            "sys.exit(int(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_without_dask_the_cluster_says_what_to_install() -> None:
    code = ("import sys; sys.modules['distributed'] = None\n"
            "from grader.errors import SandboxError\n"
            "try:\n    import grader.sandbox.cluster\nexcept SandboxError as e:\n    print(e.exit_code, e)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "5 grading on a Dask cluster needs Dask: pip install -e '.[cluster]'"


def test_execution_round_trips_through_wire_json() -> None:
    from grader.execution import execution_from_wire, execution_to_wire

    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    execution = Execution(
        (CellOutcome(0, "ok", 0.25, None, "hi\n", ("iVBORw0K",)),
         CellOutcome(2, "error", 1.0, {"ename": "ValueError", "evalue": "x", "traceback": ""})),
        {"a": ProbeAnswer(True, {"out": arr, "n": 3, "loss": float("nan")}),
         "b": ProbeAnswer(False, error={"kind": "raised", "ename": "E", "evalue": "v", "traceback": ""})},
        {"cgroups": "on"}, ("event",), 1.5, 2, ("a note",))
    back = execution_from_wire(execution_to_wire(execution))
    assert back.cells == execution.cells and back.events == execution.events
    assert back.notes == ("a note",)
    assert (back.protections, back.seconds, back.attempts) == ({"cgroups": "on"}, 1.5, 2)
    value = back.answers["a"].value
    assert type(value["out"]) is np.ndarray and value["out"].dtype == np.float32
    assert np.array_equal(value["out"], arr) and value["n"] == 3 and np.isnan(value["loss"])
    assert back.answers["b"] == execution.answers["b"]


def test_malformed_or_pickled_replies_are_rejected() -> None:
    import pickle

    from grader.execution import execution_from_wire

    good = json.loads(_minimal_wire())
    for bad in (pickle.dumps({"cells": []}).decode("latin-1"), "[]",
                json.dumps({**good, "cells": [{"index": "0"}]}),
                json.dumps({**good, "answers": {"k": {"ok": True, "value": {"__nd__": ["object", [1], "AA=="]},
                                                      "error": None}}})):
        with pytest.raises(wire.WireError):
            execution_from_wire(bad)


def _minimal_wire() -> str:
    from grader.execution import execution_to_wire

    return execution_to_wire(Execution((), {}, {}, (), 0.0, 1))


def test_staged_files_travel_as_bytes_and_stay_inside(tmp_path: Path) -> None:
    from grader.sandbox.cluster import read_files, write_files
    from grader.errors import SandboxError

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "nb.ipynb").write_bytes(b"{}")
    (tmp_path / "a" / "b" / "data.txt").write_bytes(b"\x00\x01")
    (tmp_path / "link").symlink_to(tmp_path / "nb.ipynb")
    files = read_files(tmp_path)
    assert files == {"nb.ipynb": b"{}", "a/b/data.txt": b"\x00\x01"}
    dest = tmp_path / "dest"
    write_files(files, dest)
    assert (dest / "a" / "b" / "data.txt").read_bytes() == b"\x00\x01"
    for rel in ("../escape", "/etc/passwd"):
        with pytest.raises(SandboxError):
            write_files({rel: b""}, tmp_path / "dest2")
    assert not (tmp_path / "escape").exists()


def test_unreachable_scheduler_exits_5_before_grading(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "grades"
    started = time.monotonic()
    proc = grader_cli("run", str(EXAMPLES), "--out", str(out),
                      env={"GRADER_SCHEDULER": f"tcp://127.0.0.1:{port}"}, timeout=120)
    assert proc.returncode == 5, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"grader: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port} "
                     f"({lines[0].split('(', 1)[1].rsplit(')', 1)[0]}); nothing was graded"]
    assert not out.exists()
    assert time.monotonic() - started < 60


# -- on the cluster ----------------------------------------------------------------------------

@pytest.mark.slow
def test_cluster_logs_match_a_local_run(cluster: Any, graded_examples: dict[str, Any],
                                        tmp_path: Path) -> None:
    from grader.grading.run import GradingSession

    a = spec.find(ROOT, "rnn_and_grad")
    out = tmp_path / "grades"
    seen: list[str] = []
    with GradingSession(root=ROOT, assignment=a, out_dir=out, jobs=1,
                        scheduler=cluster.scheduler_address) as session:
        results = [g.log.as_dict() for g in session.grade(
            student_dirs(EXAMPLES), jobs=1, on_done=lambda r: seen.append(r.log.student))]
        assert session._cluster is not None and session._cluster.slots == 2
    local = graded_examples["logs"]
    assert sorted(seen) == sorted(local)
    for r in results:
        assert _comparable(r) == _comparable(local[r["student"]]), r["student"]
        on_disk = json.loads((out / r["student"] / "submission_log.json").read_text())
        assert _comparable(on_disk) == _comparable(r)
        for fig in (graded_examples["out"] / r["student"]).glob("figures/*.png"):
            assert (out / r["student"] / "figures" / fig.name).read_bytes() == fig.read_bytes()
    assert (out / "summary.csv").read_text() == (graded_examples["out"] / "summary.csv").read_text()
    from tests.conftest import NESTED_ROOT_OFF

    assert all(v.startswith("on") or k in NESTED_ROOT_OFF
               for r in results for k, v in r["sandbox"]["protections"].items())

    # A rerun reuses every log (the skip cache is the same), without sending a task.
    with GradingSession(root=ROOT, assignment=a, out_dir=out, jobs=1,
                        scheduler=cluster.scheduler_address) as session:
        again = session.grade(student_dirs(EXAMPLES), jobs=1)
    assert all(r.reused for r in again) and len(again) == len(results)


def _walk_floats_and_arrays(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk_floats_and_arrays(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_floats_and_arrays(v)
    else:
        yield value


def test_tasks_never_carry_expected_values(cluster: Any, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed.protocol.pickle import dumps

    from grader.grading.run import GradingSession

    sent: list[bytes] = []
    submit, register = distributed.Client.submit, distributed.Client.register_plugin

    def spy_submit(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(dumps((fn, args, kwargs)))
        return submit(self, fn, *args, **kwargs)

    def spy_register(self: Any, plugin: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(dumps(plugin))
        return register(self, plugin, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "submit", spy_submit)
    monkeypatch.setattr(distributed.Client, "register_plugin", spy_register)
    subs = tmp_path / "subs"
    for student in ("full_marks_alt_layout", "fails_1a_no_recurrence"):
        shutil.copytree(EXAMPLES / student, subs / student)
    a = spec.find(ROOT, "rnn_and_grad")
    with GradingSession(root=ROOT, assignment=a, out_dir=tmp_path / "grades", jobs=1,
                        scheduler=cluster.scheduler_address) as session:
        results = [g.log.as_dict() for g in session.grade(student_dirs(subs), jobs=1)]
        assert session.ctx is not None
        expected = session.ctx.expected
    assert {r["student"]: r["score"] for r in results} == {
        "full_marks_alt_layout": 30.0, "fails_1a_no_recurrence": 21.0}
    assert len(sent) == 1 + 2  # the plugin, then one task per student: the reference ran here
    blob = b"\n".join(sent)

    # The inspection sees what a task does carry: the notebook, the probes and their inputs.
    nb = (subs / "full_marks_alt_layout" / a.notebook).read_bytes()
    assert nb in blob and a.probes_source.encode() in blob
    x = requests_for(a)[a.checks[1].request_key][1]["x"]
    assert json.dumps(wire.encode_value(x)).encode() in blob

    hidden = [c for c in a.checks if c.visibility == "hidden" and c.request_key in expected]
    assert hidden
    needles = 0
    for check in hidden:
        for v in _walk_floats_and_arrays(expected[check.request_key]):
            if isinstance(v, np.ndarray) and v.size >= 4:
                forms = [v.tobytes(), base64.b64encode(v.tobytes()), v.astype(np.float64).tobytes()]
            elif isinstance(v, float) and len(repr(v)) >= 8:
                forms = [repr(v).encode(), struct.pack(">d", v), struct.pack("<d", v)]
            else:
                continue
            needles += 1
            for form in forms:
                assert form not in blob, f"{check.name}: an expected value was sent to a worker"
    assert needles >= 5
    # The reference's solution code, less what a student wrote the same way.
    students = "\n".join(str(c) for d in subs.iterdir()
                          for c in read_notebook(d / a.notebook).cells)
    solution = [line for line in _solution_lines(ROOT / "reference" / a.notebook)
                if line not in students]
    assert len(solution) >= 3
    assert not [line for line in solution if line.encode() in blob]


def _solution_lines(reference: Path) -> list[str]:
    """The reference's solution code (between the markers), long lines only."""
    import nbformat

    lines, inside = [], False
    nb = nbformat.read(str(reference), as_version=4)  # type: ignore[no-untyped-call]
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if "# BEGIN SOLUTION" in line:
                inside = True
            elif "# END SOLUTION" in line:
                inside = False
            elif (inside or line.rstrip().endswith("# SOLUTION")) and len(line.strip()) > 30:
                lines.append(line.strip())
    return lines


def test_unconfined_workers_are_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    from grader.sandbox.cluster import ClusterExecutor
    from grader.errors import SandboxError

    # Workers in this process: they see the patched cgroup set-up, as a machine without it would.
    monkeypatch.setattr(sandbox, "make_cgroups",
                        lambda slot, limits: ([], {"cgroups": "off: not available (test)"}))
    a = spec.find(ROOT, "rnn_and_grad")
    limits = limits_for(a)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp://", host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR) as lc:
        warnings: list[str] = []
        with pytest.raises(SandboxError, match="none usable"):
            ClusterExecutor(scheduler=lc.scheduler_address, limits=limits, warn=warnings.append)
        assert len(warnings) == 1
        assert "sandbox protection off: cgroups" in warnings[0]
        assert "--allow-unconfined" in warnings[0]
        with ClusterExecutor(scheduler=lc.scheduler_address, limits=limits,
                             allow_unconfined=True) as executor:
            assert executor.slots == 1
            workdir = stage(EXAMPLES / "full_marks_alt_layout")
            try:
                nb = read_notebook(workdir / a.notebook)
                execution = executor.run(workdir=workdir, cells=list(nb.cells),
                                         probes_source=a.probes_source,
                                         requests=requests_for(a))
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    assert execution.protections["cgroups"].startswith("off")
    assert all(c.status == "ok" for c in execution.cells)


@pytest.mark.slow
def test_worker_killed_mid_batch_every_log_written_once(cluster: Any, tmp_path: Path) -> None:
    from grader.grading.run import GradingSession

    # Students that take a couple of seconds each, so both workers are busy when one dies.
    subs = tmp_path / "subs"
    students = [f"student{k:02d}" for k in range(6)]
    _slow_students(subs, students, 2)
    a = spec.find(ROOT, "rnn_and_grad")
    out = tmp_path / "grades"
    done: list[str] = []
    killed: dict[str, Any] = {}
    client = distributed.Client(cluster.scheduler_address, set_as_default=False)
    try:
        pids = client.run(os.getpid)

        def on_done(result: Any) -> None:
            done.append(result.log.student)
            if killed:
                return
            # Kill (SIGKILL) a worker that is running a task right now; its nanny restarts it.
            for address, ws in list(cluster.scheduler.workers.items()):
                keys = [ts.key for ts in list(ws.processing)]
                if keys and address in pids:
                    killed.update(address=address, pid=pids[address], keys=keys)
                    os.kill(pids[address], signal.SIGKILL)
                    return

        with GradingSession(root=ROOT, assignment=a, out_dir=out, jobs=1,
                            scheduler=cluster.scheduler_address) as session:
            results = [g.log.as_dict() for g in session.grade(student_dirs(subs), jobs=1,
                                                              on_done=on_done)]
        assert killed, "no worker was busy to be killed"
        assert sorted(done) == students  # each result reported once
        assert sorted(r["student"] for r in results) == students
        assert all(r["score"] == 30.0 for r in results)
        for s in students:
            files = sorted(p.name for p in (out / s).iterdir())
            assert files == ["figures", "submission_log.json"] or files == ["submission_log.json"]
        assert not list(out.rglob("*.tmp"))
        # The task that died with its worker ran again, on a worker still alive.
        story = cluster.scheduler.story(killed["keys"][0])
        assert len([e for e in story if e[2] == "processing"]) >= 2, story
        client.wait_for_workers(2, timeout=60)
        # The next run's start on that machine removes what the killed worker left behind.
        from grader.sandbox.cluster import ClusterExecutor

        with ClusterExecutor(scheduler=cluster.scheduler_address, limits=limits_for(a)):
            left = [p for p in Path("/sys/fs/cgroup").glob(f"**/grader-{killed['pid']}-*")]
        assert left == []
    finally:
        client.close()
        _remove_cgroups_of(int(killed.get("pid", -1)))


def _warm_pid(name: str, dask_worker: Any) -> int:
    return int(dask_worker.plugins[name].worker._proc.pid)


@pytest.mark.slow
def test_a_dead_warm_worker_is_replaced_and_its_task_retried(cluster: Any, tmp_path: Path) -> None:
    from grader.grading.run import GradingSession

    subs = tmp_path / "subs"
    students = [f"student{k:02d}" for k in range(4)]
    _slow_students(subs, students, 2)
    a = spec.find(ROOT, "rnn_and_grad")
    killed: list[int] = []
    with GradingSession(root=ROOT, assignment=a, out_dir=tmp_path / "grades", jobs=1,
                        scheduler=cluster.scheduler_address) as session:
        assert session._cluster is not None
        name, client = session._cluster.plugin_name, session._cluster.client
        before = client.run(_warm_pid, name)

        def on_done(result: Any) -> None:
            if not killed:  # the other worker is mid-task: kill the grading process under it
                for pid in before.values():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        results = [g.log.as_dict() for g in session.grade(student_dirs(subs), jobs=1,
                                                          on_done=on_done)]
        after = client.run(_warm_pid, name)
    assert killed
    assert set(after.values()).isdisjoint(before.values())  # replaced on every worker
    assert sorted(r["student"] for r in results) == students
    assert all(r["score"] == 30.0 for r in results)
    # Each task the kill caught was graded again from its start on a new process, and says so.
    said = [e["message"] for r in results for e in r["errors"]]
    assert said and all(re.fullmatch(
        r"the grading worker \(pid \d+\) died( \(.+\))?; killed it, started a new one and "
        r"graded this submission again from its start", m) for m in said), said
    assert all(e["kind"] == "sandbox" for r in results for e in r["errors"])


def _slow_students(subs: Path, names: list[str], seconds: float) -> None:
    import nbformat

    nb = nbformat.read(str(EXAMPLES / "full_marks_alt_layout" / "rnn_and_grad.ipynb"), as_version=4)  # type: ignore[no-untyped-call]
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import time\ntime.sleep({seconds})"))  # type: ignore[no-untyped-call]
    for s in names:
        (subs / s).mkdir(parents=True)
        nbformat.write(nb, str(subs / s / "rnn_and_grad.ipynb"))  # type: ignore[no-untyped-call]


@pytest.mark.slow
def test_interrupted_client_leaves_the_cluster_clean_and_a_rerun_resumes(
        cluster: Any, tmp_path: Path) -> None:
    subs, out = tmp_path / "subs", tmp_path / "grades"
    shutil.copytree(EXAMPLES / "full_marks_alt_layout", subs / "a_fast")
    _slow_students(subs, ["b_slow", "c_slow", "d_slow"], 6)
    exe = Path(sys.executable).parent / "grader"
    command = [str(exe), "run", str(subs), "--out", str(out), "--scheduler", cluster.scheduler_address]
    p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / "a_fast" / "submission_log.json").exists():
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    written = len(list(out.glob("*/submission_log.json")))
    assert 1 <= written < 4 and "grader: interrupted:" in stderr
    # Submissions in flight when the interrupt came are the run's loss, not the students':
    # whatever log is there is a full-marks one (no "could not grade" for a cancelled task).
    assert [json.loads(p.read_text())["errors"] for p in out.glob("*/submission_log.json")] == [
        [] for _ in range(written)]
    # The scheduler forgets the run: no task of it left, its plugin (warm workers) removed.
    deadline = time.monotonic() + 30
    while cluster.scheduler.tasks or any(n.startswith("grader-sandbox-")
                                         for n in cluster.scheduler.worker_plugins):
        assert time.monotonic() < deadline, (list(cluster.scheduler.tasks),
                                             list(cluster.scheduler.worker_plugins))
        time.sleep(0.2)
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"graded 4 submissions: 4 full marks, 0 with errors, {written} reused" in again.stdout


def _remove_cgroups_of(pid: int) -> None:
    """Should the test fail before a sweep: a killed worker cannot remove its own cgroups."""
    if pid < 0:
        return
    deadline = time.monotonic() + 10
    for path in list(Path("/sys/fs/cgroup").glob(f"**/grader-{pid}-*")):
        while time.monotonic() < deadline and sandbox.cgroup_pids([path]):
            time.sleep(0.1)
        sandbox.remove_cgroups([path])

