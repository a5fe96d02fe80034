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
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import nbformat
import pytest

import grader
from tests.conftest import ROOT, grader_cli, sandbox_uid, uid_drop_unreachable

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


@dataclass(frozen=True)
class Install:
    """A grader installation the tests run as a user would: its interpreter, the package file
    its sandbox imports and its site-packages."""

    python: Path
    package: Path
    purelib: Path

    def python_c(self, code: str, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> Any:
        """``python -c code args`` in this install; -P: never the checkout beside the cwd."""
        return subprocess.run([str(self.python), "-P", "-c", code, *args], cwd=ROOT,
                              capture_output=True, text=True, env={**os.environ, **(env or {})},
                              timeout=timeout)

    def cli(self, *args: str, env: dict[str, str], timeout: float) -> Any:
        return self.python_c("from grader.cli import main; main()", *args, env=env,
                             timeout=timeout)


def _linked_copy(src: Path, dst: Path) -> None:
    """``src`` as hard links under ``dst`` (a copy where /tmp is another file system): the
    files stay root's, 0644, as installed; only the folders above them are new."""
    same_device = src.stat().st_dev == dst.parent.stat().st_dev
    shutil.copytree(src, dst, symlinks=True,
                    copy_function=os.link if same_device else shutil.copy2)


@pytest.fixture(scope="module")
def install() -> Iterator[Install]:
    """This grader where every user may reach it, as on Gradescope (``/autograder``) or a
    course server. A clone in ``mktemp -d`` or root's home is behind a folder only root may
    pass, where the grader (rightly) keeps root nested in namespaces instead of dropping the
    uid: the tests then install this very checkout again in a folder open to all (its venv as
    hard links, the package copied, an ordinary .pth in place of the editable finder)."""
    here = Install(Path(sys.executable), Path(grader.__file__),
                   Path(sysconfig.get_paths()["purelib"]))
    if not uid_drop_unreachable():
        yield here
        return
    base = Path(tempfile.mkdtemp(prefix="grader-reachable-"))
    try:
        base.chmod(0o755)
        shutil.copytree(Path(grader.__file__).parent, base / "grader",
                        ignore=shutil.ignore_patterns("__pycache__"))
        _linked_copy(Path(sys.prefix), base / "venv")
        purelib = base / "venv" / here.purelib.relative_to(sys.prefix)
        for editable in purelib.glob("__editable__*grader*"):
            editable.unlink()  # removes the link, never the installed file it shares
        (purelib / "grader_reachable.pth").write_text(f"{base}\n")
        copy = Install(base / "venv" / Path(sys.executable).relative_to(sys.prefix),
                       base / "grader" / "__init__.py", purelib)
        where = copy.python_c("import grader; print(grader.__file__)").stdout.strip()
        assert where == str(copy.package), where
        yield copy
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_reachable_install_is_reachable(install: Install) -> None:
    """What the root tests below stand on: the sandbox uid can reach the install they run."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only root drops to another uid")
    probe = install.python_c("from grader.sandbox import confine; import sys; "
                             f"print(confine.unreachable_grader({sandbox_uid()}, "
                             f"{sandbox_uid()}), sys.prefix)").stdout.split()
    assert probe[:2] == ["('',", "'')"], probe
    assert Path(probe[2]) == install.python.parent.parent


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


def _setup(tmp_path: Path, cells: str | None = None,
           purelib: Path | None = None) -> dict[str, Path]:
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
        cells = cells.replace("@@PURELIB@@", repr(str(purelib or sysconfig.get_paths()[
            "purelib"])))
        nb = nbformat.read(paths["reference"], as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(cells))
        (subs / "hostile").mkdir()
        nbformat.write(nb, subs / "hostile" / NB)
    return paths


def _run(paths: dict[str, Path], *extra: str, disable: str,
         install: Install | None = None) -> Any:
    args = ("run", str(paths["subs"]), "--course", str(paths["course"]), "--assignment", NAME,
            "--out", str(paths["grades"]), "-j", "1", *extra)
    env = {DISABLE: disable, "GRADER_CACHE_DIR": str(paths["cache"])}
    if install is not None:
        return install.cli(*args, env=env, timeout=120)
    return grader_cli(*args, env=env, timeout=120)


def _log(paths: dict[str, Path], student: str) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(
        (paths["grades"] / student / "submission_log.json").read_text())
    return log


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the uid drop is what root does; "
                    "an unprivileged grader already runs student code as itself, under Landlock")
def test_as_root_without_namespaces_or_landlock_the_uid_alone_keeps_secrets_and_code(
        tmp_path: Path, install: Install) -> None:
    paths = _setup(tmp_path, ATTEMPTS, purelib=install.purelib)
    before = _digest(install.package)
    r = _run(paths, disable="namespaces,landlock", install=install)
    assert r.returncode == 0, r.stderr
    assert _digest(install.package) == before
    assert not (install.purelib / "pwned.pth").exists()
    honest, hostile = _log(paths, "honest"), _log(paths, "hostile")
    assert honest["score"] == honest["max_score"] > 0
    assert hostile["score"] == honest["score"]  # it gained nothing, and lost nothing either
    stdout = hostile["cells"][-1]["stdout"].splitlines()
    uid = sandbox_uid()
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
def test_as_root_with_namespaces_the_sandboxs_root_is_the_sandbox_uid_outside(
        tmp_path: Path, install: Install) -> None:
    paths = _setup(tmp_path, 'print(open("/proc/self/uid_map").read().split())\n'
                             'print(open("/proc/self/gid_map").read().split())')
    r = _run(paths, disable="", install=install)
    assert r.returncode == 0, r.stderr
    uid = sandbox_uid()
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


# Grades NEIGHBOUR (argv[1]) in the two staged folders (argv[2]) at once through one warm
# worker with two slots, in the install under test; prints what each run saw, as JSON.
TWO_SLOTS = '''
import json, sys, threading
from pathlib import Path
from grader.execution import Limits
from grader.sandbox import confine, local

code, dirs = sys.argv[1], json.loads(sys.argv[2])
results = {}
with local.Worker(limits=Limits(cell_seconds=30, notebook_seconds=60), slots=2) as worker:
    def grade(k):
        results[k] = worker.run(workdir=Path(dirs[k]), cells=[code], probes_source="",
                                requests={})

    threads = [threading.Thread(target=grade, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
print(json.dumps([{"status": [c.status for c in e.cells], "stdout": e.cells[0].stdout,
                   "uid": e.protections[confine.UID_KEY], "pid": e.protections["pid namespace"]}
                  for e in results.values()]))
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: only root has other uids to give")
def test_as_root_without_namespaces_two_slots_run_as_two_uids_apart(install: Install) -> None:
    """With ``-j 2`` and no pid or mount namespace, the two submissions graded at once are
    two users: neither can signal the other's process or enter its staged folder."""
    from grader.files import private_tmpdir
    from grader.sandbox import confine

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
        r = install.python_c(TWO_SLOTS, code, json.dumps([str(d) for d in dirs]),
                             env={DISABLE: "namespaces,landlock"})
        assert r.returncode == 0, r.stderr
        runs = json.loads(r.stdout.splitlines()[-1])
        assert len(runs) == 2
        for run in runs:
            assert run["status"] == ["ok"], run
            assert run["stdout"].splitlines() == [
                "saw the other True", "signal PermissionError", "list PermissionError",
                "read PermissionError"]
            assert run["pid"].startswith("off")
        assert {run["uid"] for run in runs} == {
            f"on (uid {uid} {confine.sandbox_user(k)})" for k, uid in enumerate(uids)}
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
