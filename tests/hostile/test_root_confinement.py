"""Root without namespaces or Landlock (a container such as Gradescope's): issue 18, 10.

The grader, as root, runs student code as an unprivileged uid of its own; these tests force
the other layers off (``$GRADER_SANDBOX_DISABLE``, read by the grader, never by the sandbox)
and show that the uid alone keeps a submission out of the checks, the reference, the grades,
the expected-value cache and the grader's own code; and that a machine where nothing would
confine student code is refused unless the instructor says ``--allow-unprotected``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

import nbformat
import pytest

import grader
from tests.conftest import ROOT, grader_cli, uid_drop_unreachable

pytestmark = pytest.mark.hostile
TOY = ROOT / "tests" / "toy"
NAME = "nearest_centroid"
NB = f"{NAME}.ipynb"
DISABLE = "GRADER_SANDBOX_DISABLE"

# Each attempt prints its label and the exception's name, or "GOT" and what it got.
ATTEMPTS = '''
import os
import grader

def attempt(label, action):
    try:
        got = action()
        print(label, "GOT", repr(got)[:80])
    except Exception as e:
        print(label, type(e).__name__)

attempt("read checks", lambda: open(@@CHECKS@@ + "/assignment.yaml").read())
attempt("list checks", lambda: os.listdir(@@CHECKS@@))
attempt("read reference", lambda: open(@@REFERENCE@@).read())
attempt("list cache", lambda: os.listdir(@@CACHE@@))
attempt("list grades", lambda: os.listdir(@@GRADES@@))
attempt("write grader", lambda: open(grader.__file__, "a").write("# pwned\\n"))
attempt("write venv", lambda: open(@@PURELIB@@ + "/pwned.pth", "w").write("import os\\n"))
print("uid", os.getuid(), os.geteuid(), os.getgroups())
'''
EXPECTED_ATTEMPTS = ["read checks PermissionError", "list checks PermissionError",
                     "read reference PermissionError", "list cache PermissionError",
                     "list grades PermissionError", "write grader PermissionError",
                     "write venv PermissionError"]


def _sandbox_uid() -> int:
    try:
        return pwd.getpwnam("grader-sandbox").pw_uid
    except KeyError:
        return 65534


needs_reachable_grader = pytest.mark.skipif(
    bool(uid_drop_unreachable()),
    reason="the grader sits behind a folder only root may pass; the uid drop is off there")


def test_root_behind_a_closed_folder_keeps_namespaces_and_landlock_or_is_refused() -> None:
    """Where the uid cannot reach the grader's venv, root stays root: allowed only inside its
    own namespaces and under Landlock, both of which take host-wide power and files away."""
    from grader.sandbox import confine

    off = "off: uid 999 cannot reach the grader's Python environment (/root is not searchable)"
    nested = {confine.UID_KEY: off, "user namespace": "on", "pid namespace": "on",
              "mount namespace": "on", "landlock": "on (ABI 6)"}
    assert confine.unconfined_reason(nested) == ""
    for layer in ("user namespace", "landlock"):
        assert confine.unconfined_reason({**nested, layer: "off: forced"}) == (
            f"student code would run as root ({confine.UID_KEY} {off})")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _setup(tmp_path: Path, cells: str | None = None) -> dict[str, Path]:
    """A private copy of the toy course (pytest's folders are root's alone), a class of the
    reference's own notebook ("honest") and, with ``cells``, one more that runs them."""
    course, subs = tmp_path / "course", tmp_path / "submissions"
    for part in ("assignments", "reference"):
        shutil.copytree(TOY / part, course / part, ignore=shutil.ignore_patterns("__pycache__"))
    paths = {"course": course, "subs": subs, "grades": tmp_path / "grades",
             "cache": tmp_path / "cache", "checks": course / "assignments" / NAME,
             "reference": course / "reference" / NB}
    (subs / "honest").mkdir(parents=True)
    shutil.copy(paths["reference"], subs / "honest" / NB)
    if cells is not None:
        for key in ("checks", "reference", "cache", "grades"):
            cells = cells.replace(f"@@{key.upper()}@@", repr(str(paths[key])))
        cells = cells.replace("@@PURELIB@@", repr(sysconfig.get_paths()["purelib"]))
        nb = nbformat.read(paths["reference"], as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(cells))
        (subs / "hostile").mkdir()
        nbformat.write(nb, subs / "hostile" / NB)
    return paths


def _run(paths: dict[str, Path], *extra: str, disable: str) -> Any:
    return grader_cli("run", str(paths["subs"]), "--course", str(paths["course"]),
                      "--assignment", NAME, "--out", str(paths["grades"]), "-j", "1", *extra,
                      env={DISABLE: disable, "GRADER_CACHE_DIR": str(paths["cache"])},
                      timeout=120)


def _log(paths: dict[str, Path], student: str) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(
        (paths["grades"] / student / "submission_log.json").read_text())
    return log


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the uid drop is what root does; "
                    "an unprivileged grader already runs student code as itself, under Landlock")
@needs_reachable_grader
def test_as_root_without_namespaces_or_landlock_the_uid_alone_keeps_secrets_and_code(
        tmp_path: Path) -> None:
    paths = _setup(tmp_path, ATTEMPTS)
    package_file = Path(grader.__file__)
    before = _digest(package_file)
    purelib = Path(sysconfig.get_paths()["purelib"])
    r = _run(paths, disable="namespaces,landlock")
    assert r.returncode == 0, r.stderr
    assert _digest(package_file) == before
    assert not (purelib / "pwned.pth").exists()
    honest, hostile = _log(paths, "honest"), _log(paths, "hostile")
    assert honest["score"] == honest["max_score"] > 0
    assert hostile["score"] == honest["score"]  # it gained nothing, and lost nothing either
    stdout = hostile["cells"][-1]["stdout"].splitlines()
    uid = _sandbox_uid()
    assert stdout == [*EXPECTED_ATTEMPTS, f"uid {uid} {uid} []"], stdout
    protections = hostile["sandbox"]["protections"]
    assert protections["unprivileged uid"].startswith(f"on (uid {uid} ")
    assert protections["secrets unreadable (uid)"] == "on"
    assert protections["grader code unwritable (uid)"] == "on"
    assert {"landlock", "user namespace", "pid namespace"} <= set(hostile["sandbox"]["off"])
    # As root the grader made the grades folder and the cache its own alone.
    assert paths["grades"].stat().st_mode & 0o777 == 0o700
    assert paths["cache"].stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only root has another uid to map")
@needs_reachable_grader
def test_as_root_with_namespaces_the_sandboxs_root_is_the_sandbox_uid_outside(
        tmp_path: Path) -> None:
    paths = _setup(tmp_path, 'print(open("/proc/self/uid_map").read().split())\n'
                             'print(open("/proc/self/gid_map").read().split())')
    r = _run(paths, disable="")
    assert r.returncode == 0, r.stderr
    uid = _sandbox_uid()
    gid = pwd.getpwuid(uid).pw_gid
    hostile = _log(paths, "hostile")
    assert hostile["cells"][-1]["stdout"].splitlines() == [f"['0', '{uid}', '1']",
                                                           f"['0', '{gid}', '1']"]
    assert hostile["score"] == _log(paths, "honest")["score"]
    assert hostile["sandbox"]["protections"]["user namespace"] == "on"


def test_nothing_to_confine_student_code_is_refused_unless_allowed(tmp_path: Path) -> None:
    """With every file-confining layer forced off, ``grader run`` stops before any student
    code (the reference's included) runs: exit 5 and one line saying why."""
    paths = _setup(tmp_path)
    r = _run(paths, disable="namespaces,landlock,uid")
    if os.geteuid() == 0:
        reason = ("student code would run as root (unprivileged uid off: disabled by "
                  "$GRADER_SANDBOX_DISABLE)")
    else:
        reason = ("nothing confines student code's file access: Landlock is off and it would "
                  "run as the grader's own uid")
    assert r.returncode == 5, r.stderr
    assert r.stderr.splitlines()[-1] == (f"grader: error: refusing to run student code "
                                         f"unprotected: {reason}; pass --allow-unprotected to "
                                         "grade anyway")
    assert not (paths["grades"] / "honest").exists()

    allowed = _run(paths, "--allow-unprotected", disable="namespaces,landlock,uid")
    assert allowed.returncode == 0, allowed.stderr
    log = _log(paths, "honest")
    assert log["score"] == log["max_score"]
    off = set(log["sandbox"]["off"])
    assert {"landlock", "user namespace", "pid namespace", "network namespace",
            "mount namespace"} <= off
    assert ("unprivileged uid" in off) == (os.geteuid() == 0)
    assert "WARNING: sandbox protection off: landlock" in allowed.stderr


def test_an_unknown_layer_to_disable_is_an_error(tmp_path: Path) -> None:
    paths = _setup(tmp_path)
    r = _run(paths, disable="namespaces,seatbelts")
    assert r.returncode == 5
    assert r.stderr.splitlines()[-1] == ("grader: error: $GRADER_SANDBOX_DISABLE: unknown "
                                         "layer(s) seatbelts (known: namespaces, landlock, uid)")


# Each of two submissions graded at once waits to see the other's process, then tries to
# signal it and to list its staged folder. @@UIDS@@ and @@DIRS@@ are both slots' uids and folders.
NEIGHBOUR = '''
import os, time
me, others = os.getuid(), set(@@UIDS@@) - {os.getuid()}
theirs = [d for d in @@DIRS@@ if d != os.getcwd()][0]
found, deadline = [], time.time() + 20
while not found and time.time() < deadline:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid in others:
                found.append(int(pid))
        except OSError:
            pass
    time.sleep(0.05)
print("saw the other", bool(found))
for label, action in (("signal", lambda: os.kill(found[0], 0)),
                      ("list", lambda: os.listdir(theirs)),
                      ("read", lambda: open(theirs + "/notebook.txt").read())):
    try:
        action()
        print(label, "GOT")
    except Exception as e:
        print(label, type(e).__name__)
time.sleep(1.5)  # the other may still be looking for this process
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only root has other uids to give")
@needs_reachable_grader
def test_as_root_without_namespaces_two_slots_run_as_two_uids_apart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``-j 2`` and no pid or mount namespace, the two submissions graded at once are
    two users: neither can signal the other's process or enter its staged folder."""
    import threading

    from grader.execution import Execution, Limits
    from grader.files import private_tmpdir
    from grader.sandbox import confine, local

    monkeypatch.setenv(DISABLE, "namespaces,landlock")
    ids = [confine.sandbox_identity(k) for k in range(2)]
    uids = [uid for uid, _, _ in ids]
    assert len(set(uids)) == 2 and 0 not in uids and confine.NOBODY not in uids, ids
    assert len({gid for _, gid, _ in ids}) == 2
    dirs = [private_tmpdir("sub") for _ in range(2)]
    try:
        for d in dirs:
            (d / "notebook.txt").write_text("a classmate's work\n")
        code = NEIGHBOUR.replace("@@UIDS@@", repr(uids)).replace(
            "@@DIRS@@", repr([str(d) for d in dirs]))
        results: dict[int, Execution] = {}
        with local.Worker(limits=Limits(cell_seconds=30, notebook_seconds=60),
                          slots=2) as worker:
            def grade(k: int) -> None:
                results[k] = worker.run(workdir=dirs[k], cells=[code], probes_source="",
                                        requests={})

            threads = [threading.Thread(target=grade, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        seen = set()
        for execution in results.values():
            assert [c.status for c in execution.cells] == ["ok"], execution
            assert execution.cells[0].stdout.splitlines() == [
                "saw the other True", "signal PermissionError", "list PermissionError",
                "read PermissionError"]
            seen.add(execution.protections[confine.UID_KEY])
            assert execution.protections["pid namespace"].startswith("off")
        assert seen == {f"on (uid {uid} {confine.sandbox_user(k)})" for k, uid in enumerate(uids)}
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
