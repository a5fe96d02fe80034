"""Confinement applied to a submission's process, built from what Linux gives without Docker.

Every mechanism is tried; the ones that are unavailable are reported, never silently skipped.
A report maps a protection's name to "on" or to "off: <why>", and ends up in each
submission's log and on the instructor's terminal.

Order matters and is fixed here (see ``docs/security.md``):

1. in the *holder* process (still outside): join the slot's cgroups; as root, hand the staged
   folder to the sandbox's own uid and drop to it (``drop_privileges``: a dedicated
   ``grader-sandbox`` user, else ``nobody``), so neither the namespaces nor anything after
   them ever run as the host's root; then ``unshare(user, pid, net, mount, ipc, uts)`` and map
   uid/gid 0 inside to the (now unprivileged) ids outside, so "root" in the sandbox holds
   capabilities over nothing on the host;
2. the holder starts the namespace's *init* (pid 1, an exec'd ``sleep``) and forks the
   *runner* (pid 2), the process that executes student code. The runner makes its mounts
   private and mounts a fresh ``/proc`` that shows only the sandbox's own processes;
3. then, still in the runner: rlimits, ``no_new_privs``, Landlock (file system, TCP, signals
   and abstract sockets), and a scrubbed environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable

from grader.execution import GRADING_ENV, Limits, Protections


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4


def _errno_message() -> str:
    err = ctypes.get_errno()
    return f"{os.strerror(err)} (errno {err})"


# -- cgroups (used when the grader may create them, i.e. as root on most machines) ------------

def cgroup_roots() -> dict[str, Path]:
    """Writable cgroup hierarchies for memory and pids, v2 preferred."""
    roots: dict[str, Path] = {}
    unified = [Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")]
    for base in unified:
        controllers = base / "cgroup.controllers"
        if controllers.exists() and os.access(base, os.W_OK):
            available = controllers.read_text().split()
            if "memory" in available and "pids" in available:
                return {"v2": base}
    for name in ("memory", "pids"):
        base = Path("/sys/fs/cgroup") / name
        if (base / "cgroup.procs").exists() and os.access(base, os.W_OK):
            roots[name] = base
    return roots


def make_cgroups(slot: str, limits: Limits) -> tuple[list[Path], Protections]:
    """Create the cgroups a slot's submissions run in; returns their paths and a report."""
    roots = cgroup_roots()
    paths: list[Path] = []
    try:
        if "v2" in roots:
            path = roots["v2"] / f"grader-{slot}"
            path.mkdir(exist_ok=True)
            (path / "memory.max").write_text(str(limits.memory_mb * 1024 * 1024))
            (path / "memory.swap.max").write_text("0") if (path / "memory.swap.max").exists() else None
            (path / "pids.max").write_text(str(limits.max_processes))
            paths.append(path)
        else:
            if "memory" in roots:
                path = roots["memory"] / f"grader-{slot}"
                path.mkdir(exist_ok=True)
                (path / "memory.limit_in_bytes").write_text(str(limits.memory_mb * 1024 * 1024))
                paths.append(path)
            if "pids" in roots:
                path = roots["pids"] / f"grader-{slot}"
                path.mkdir(exist_ok=True)
                (path / "pids.max").write_text(str(limits.max_processes))
                paths.append(path)
    except OSError as exc:
        return paths, {"cgroups": f"off: {exc}"}
    if not paths:
        return [], {"cgroups": "off: no writable memory/pids cgroup hierarchy (not root?)"}
    return paths, {"cgroups": "on: " + ", ".join(str(p) for p in paths)}


def cgroup_pids(paths: Iterable[Path]) -> set[int]:
    pids: set[int] = set()
    for path in paths:
        try:
            pids.update(int(line) for line in (path / "cgroup.procs").read_text().split())
        except (OSError, ValueError):
            pass
    return pids


def kill_cgroup_members(paths: Iterable[Path], *, seconds: float = 2.0) -> None:
    """SIGKILL every process in ``paths`` until none is left or ``seconds`` have passed.

    Without a pid namespace a sandbox's strays can only be found through its cgroup; a fork
    in progress can add one after a sweep, hence the loop."""
    import signal
    import time

    paths = list(paths)
    deadline = time.monotonic() + seconds
    while (pids := cgroup_pids(paths)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def remove_cgroups(paths: Iterable[Path]) -> None:
    for path in paths:
        try:
            path.rmdir()
        except OSError:
            pass


def sweep_orphan_cgroups() -> list[Path]:
    """Remove the cgroups of grading runs that died without removing them; return those.

    A grader or Dask worker killed outright (``kill -9``, node trouble, preemption) leaves its
    sandboxes' cgroups behind, and a sandbox's init may sleep on in one for minutes. A cgroup
    is ``grader-<pid>-…`` after the process that made it: once that pid is gone nothing can
    collect what runs there, so it is killed and the cgroup removed. A live pid (or a reused
    one) is left alone.
    """
    removed: list[Path] = []
    for root in cgroup_roots().values():
        for path in root.glob("grader-*"):
            try:
                owner = int(path.name.split("-")[1])
                os.kill(owner, 0)
                continue  # alive (or another process has the pid): not ours to touch
            except (ValueError, IndexError, PermissionError):
                continue
            except ProcessLookupError:
                pass
            kill_cgroup_members([path], seconds=2.0)
            remove_cgroups([path])
            if not path.exists():
                removed.append(path)
    return removed


# -- the sandbox's own uid (when the grader is root) ----------------------------------------

SANDBOX_USER = "grader-sandbox"
NOBODY = 65534
# Test-only, and the grader's own: read from the grader's environment (never the sandbox's,
# which is rebuilt from scratch) to make a machine look like a container that lacks a layer.
DISABLE_VARIABLE = "GRADER_SANDBOX_DISABLE"
LAYERS = ("namespaces", "landlock", "uid")
UID_KEY = "unprivileged uid"
SECRETS_KEY = "secrets unreadable (uid)"
CODE_KEY = "grader code unwritable (uid)"


def disabled_layers() -> list[str]:
    """The layers ``$GRADER_SANDBOX_DISABLE`` (comma-separated ``LAYERS``) forces off."""
    raw = os.environ.get(DISABLE_VARIABLE, "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = sorted(set(names) - set(LAYERS))
    if unknown:
        from grader.errors import SandboxError

        raise SandboxError(f"${DISABLE_VARIABLE}: unknown layer(s) {', '.join(unknown)} "
                           f"(known: {', '.join(LAYERS)})")
    return sorted(set(names))


def sandbox_user(slot: int) -> str:
    """The user of one worker slot: ``grader-sandbox``, then ``grader-sandbox-1``, ...."""
    return SANDBOX_USER if slot == 0 else f"{SANDBOX_USER}-{slot}"


def sandbox_identity(slot: int = 0) -> tuple[int, int, str]:
    """As root: the (uid, gid, description) student code of worker slot ``slot`` runs as.

    Each slot has a dedicated user (``sandbox_user``) that owns nothing and is in no group but
    its own, so the drop leaves it exactly "others" on every file of the grader's, and two
    submissions graded at once cannot signal, trace or read each other without a pid or mount
    namespace either. It is made here if missing (setup.sh makes slot 0's when Gradescope builds
    the image). Where it cannot be made (no useradd, a read-only /etc), ``nobody`` (65534) is
    used: shared with other daemons and with any other slot that fell back, hence second best.
    """
    name = sandbox_user(slot)
    why = ""
    for attempt in range(2):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            entry = None
        if entry is not None and entry.pw_uid != 0 and entry.pw_gid != 0:
            return entry.pw_uid, entry.pw_gid, f"uid {entry.pw_uid} {name}"
        if entry is not None:
            why = f"{name} has uid or gid 0"
            break
        if attempt:
            break
        useradd = shutil.which("useradd") or ("/usr/sbin/useradd" if os.path.exists("/usr/sbin/useradd") else None)
        if useradd is None:
            why = "no useradd"
            break
        shell = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
        try:
            made = subprocess.run([useradd, "--system", "--no-create-home", "--home-dir",
                                   "/nonexistent", "--shell", shell, "--user-group", name],
                                  capture_output=True, text=True, timeout=30)
            why = made.stderr.strip()[:200] or f"useradd exited {made.returncode}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            why = str(exc)
    return NOBODY, NOBODY, f"uid {NOBODY} nobody ({name} unavailable: {why})"


def hand_over(workdir: str, uid: int, gid: int) -> None:
    """Make the staged folder the sandbox uid's: the only place it may write.

    Its contents become the uid's; the folder itself stays root's, shared with the uid's group
    only (0770), so the grader's sweep after a ``kill -9`` (``files.sweep_stale_tmpdirs``, by
    owner) still knows it. Once per folder: a later attempt in it (after a killed cell) finds
    it handed over, and everything in it is the grader's staged copy, already handed over, or
    made by the uid itself. The folder changes last, so no process of the uid can enter it
    (0700) while its contents change hands; nothing is followed (lchown, a walk that does not
    descend into links), and a file with more than one name is skipped: a staged copy has one.
    """
    if os.lstat(workdir).st_gid == gid:
        return
    for folder, dirs, files in os.walk(workdir):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if not os.path.isdir(path) and st.st_nlink > 1:
                continue
            os.chown(path, uid, gid, follow_symlinks=False)
    os.chown(workdir, -1, gid, follow_symlinks=False)
    os.chmod(workdir, 0o770)


def unreachable_ancestor(path: str, uid: int, gid: int) -> str:
    """The first folder above ``path`` that ``uid`` (in no group but ``gid``) may not pass
    through, '' if none: the staged folder is handed over, never the folders above it."""
    import stat

    parent = os.path.dirname(os.path.abspath(path))
    chain = []
    while True:
        chain.append(parent)
        if parent == os.path.dirname(parent):
            break
        parent = os.path.dirname(parent)
    for folder in reversed(chain):
        st = os.stat(folder)
        bit = (stat.S_IXUSR if st.st_uid == uid else
               stat.S_IXGRP if st.st_gid == gid else stat.S_IXOTH)
        if not st.st_mode & bit:
            return folder
    return ""


def unreachable_grader(uid: int, gid: int) -> tuple[str, str]:
    """(what, folder) of the grader's venv or package that ``uid`` cannot pass a folder above
    (a clone in root's home or in ``mktemp -d``); ('', '') when it can reach both."""
    import grader

    for what, path in (("Python environment", sys.prefix),
                       ("package", os.path.dirname(os.path.abspath(grader.__file__)))):
        blocked = unreachable_ancestor(os.path.join(path, "x"), uid, gid)
        if blocked:
            return what, blocked
    return "", ""


def open_unreachable_runtime(uid: int, gid: int) -> dict[str, int]:
    """Before the drop: a descriptor for each Python prefix ``uid`` could not reach by its
    path (an interpreter under root's 0700 home, such as pyenv's), prefix -> descriptor.

    Nothing under such a prefix is secret, but a notebook's first ``import csv`` (or numpy's
    lazy ``encodings.cp437``) must still work; ``reroute_runtime`` then imports through
    ``/proc/self/fd/N``, which starts at the folder itself. The folders above it stay closed:
    ``..`` from there leads back to the very folder the uid may not open."""
    fds: dict[str, int] = {}
    for prefix in sorted({sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix}):
        if prefix and os.path.isdir(prefix) and unreachable_ancestor(os.path.join(prefix, "x"),
                                                                     uid, gid):
            fds[prefix] = os.open(prefix, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return fds


def reroute_runtime(fds: dict[str, int]) -> None:
    """Point the import system's paths under each prefix in ``fds`` at its descriptor."""
    if not fds:
        return

    def moved(entry: str) -> str:
        for prefix, fd in fds.items():
            if entry == prefix or entry.startswith(prefix + os.sep):
                return f"/proc/self/fd/{fd}{entry[len(prefix):]}"
        return entry

    sys.path[:] = [moved(p) if isinstance(p, str) else p for p in sys.path]
    for module in list(sys.modules.values()):
        path = getattr(module, "__path__", None)
        if isinstance(path, list):
            path[:] = [moved(p) if isinstance(p, str) else p for p in path]
    sys.path_importer_cache.clear()


def drop_privileges(uid: int, gid: int, *, keep_dumpable: bool) -> None:
    """Become ``uid``/``gid`` for good: no supplementary groups, real, effective and saved ids.

    In this order: groups and gid need root's privilege, which setresuid gives up. The kernel
    marks the process non-dumpable after the change; ``keep_dumpable`` undoes that where the
    holder still has to write its own ``/proc/self/uid_map`` (which non-dumpable makes root's)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise OSError("the uid/gid change did not hold")
    if keep_dumpable:
        _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)


def check_out_of_reach(*, secrets: Iterable[str], code: Iterable[str],
                       report: Protections) -> Protections:
    """In the runner, after the drop and before Landlock (which would hide the answer): what
    the sandbox uid itself may read of the grader's secrets and write of its code."""
    readable = []
    for path in secrets:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO too
        except OSError:
            continue
        os.close(fd)
        readable.append(path)
    writable = [p for p in code if os.path.exists(p) and os.access(p, os.W_OK)]
    report[SECRETS_KEY] = ("on" if not readable else
                           f"off: readable by uid {os.getuid()}: {', '.join(readable)}")
    report[CODE_KEY] = ("on" if not writable else
                        f"off: writable by uid {os.getuid()}: {', '.join(writable)}")
    return report


def credit_landlock(report: Protections) -> Protections:
    """After Landlock: a secret the uid alone could reach is still out of student code's."""
    if report.get("landlock", "").startswith("on"):
        for key in (SECRETS_KEY, CODE_KEY):
            if report.get(key, "").startswith("off: "):
                report[key] = f"on (by Landlock; {report[key][5:]})"
    return report


def unconfined_reason(report: Protections) -> str:
    """Why this sandbox leaves student code unconfined ('' if it does not): the rule
    ``grader run`` refuses by, unless ``--allow-unprotected`` (docs/security.md).

    As root, the uid drop is required: without it student code is the host's root, whose
    capabilities (loading a kernel module, for one) no file rule contains. Then the grader's
    files need a guard: Landlock, or the dropped uid with every secret out of its reach."""
    uid = report.get(UID_KEY, "")
    if uid.startswith("off"):
        # Root in a user namespace of its own holds no capability on the host; Landlock then
        # keeps its files. Both, or the uid drop: nothing less runs student code as root.
        nested = all(report.get(k, "").startswith("on") for k in
                     ("user namespace", "pid namespace", "mount namespace", "landlock"))
        if nested:
            return ""
        return f"student code would run as root ({UID_KEY} {uid})"
    if report.get("landlock", "").startswith("on"):
        return ""
    if not uid.startswith("on (uid"):
        return ("nothing confines student code's file access: Landlock is off and it would run "
                "as the grader's own uid")
    for key in (SECRETS_KEY, CODE_KEY):
        if not report.get(key, "").startswith("on"):
            return f"Landlock is off and {key}: {report.get(key, 'not checked')}"
    return ""


# -- namespaces ----------------------------------------------------------------------------------

def enter_namespaces(*, outer_uid: int, outer_gid: int) -> Protections:
    """In the holder: unshare everything; the first child becomes the namespace's init."""
    flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
    if _libc.unshare(flags) != 0:
        why = _errno_message()
        off = f"off: unshare failed: {why}"
        return {"user namespace": off, "pid namespace": off, "network namespace": off,
                "mount namespace": off}
    try:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {outer_uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {outer_gid} 1")
    except OSError as exc:
        return {"user namespace": f"off: id mapping failed: {exc}", "pid namespace": "on",
                "network namespace": "on", "mount namespace": "on"}
    return {"user namespace": "on", "pid namespace": "on", "network namespace": "on",
            "mount namespace": "on"}


def finish_namespaces(report: Protections) -> Protections:
    """In the runner, inside the namespaces: private mounts and a /proc of our own."""
    if not report.get("mount namespace", "").startswith("on"):
        report["private /proc"] = "off: no mount namespace"
        return report
    if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        report["private /proc"] = f"off: {_errno_message()}"
        return report
    if _libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
        report["private /proc"] = f"off: mounting proc failed: {_errno_message()}"
    else:
        report["private /proc"] = "on"
    return report


def die_with_parent() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)


# -- rlimits -----------------------------------------------------------------------------------

def _vm_size_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def apply_rlimits(limits: Limits, report: Protections) -> Protections:
    """Per-process caps. The address-space cap sits on top of what the warm parent already maps."""
    mib = 1024 * 1024
    settings = {
        "memory (RLIMIT_AS)": (resource.RLIMIT_AS, _vm_size_bytes() + limits.memory_mb * mib),
        "cpu time (RLIMIT_CPU)": (resource.RLIMIT_CPU, limits.cpu_seconds),
        "processes (RLIMIT_NPROC)": (resource.RLIMIT_NPROC, limits.max_processes),
        "file size (RLIMIT_FSIZE)": (resource.RLIMIT_FSIZE, limits.file_mb * mib),
        "open files (RLIMIT_NOFILE)": (resource.RLIMIT_NOFILE, 256),
        "core dumps (RLIMIT_CORE)": (resource.RLIMIT_CORE, 0),
    }
    for name, (which, value) in settings.items():
        try:
            resource.setrlimit(which, (value, value))
            report[name] = "on"
        except (ValueError, OSError) as exc:
            report[name] = f"off: {exc}"
    if os.getuid() == 0 and report.get("user namespace") != "on":
        report["processes (RLIMIT_NPROC)"] = "off: not enforced for root"
    return report


# -- Landlock --------------------------------------------------------------------------------

_SYS_CREATE, _SYS_ADD, _SYS_RESTRICT = 444, 445, 446
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_ALL_V1 = (1 << 13) - 1
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_ALL = 1 | 2
_SCOPE_ALL = 1 | 2


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    _libc.syscall.restype = ctypes.c_long
    abi = int(_libc.syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1)))
    return max(abi, 0)


def apply_landlock(*, read: Iterable[str], write: Iterable[str], report: Protections,
                   read_fds: Iterable[int] = ()) -> Protections:
    """Allow reading only ``read`` (and beneath the folders ``read_fds`` hold open) and writing
    only ``write``; deny TCP and outside signals."""
    abi = landlock_abi()
    if abi < 1:
        report["landlock"] = "off: not supported by this kernel"
        return report
    fs = _FS_ALL_V1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    fs |= _FS_IOCTL_DEV if abi >= 5 else 0
    attr = _RulesetAttr(fs, _NET_ALL if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = int(_libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), 0))
    if ruleset < 0:
        report["landlock"] = f"off: create_ruleset failed: {_errno_message()}"
        return report
    file_rights = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
    read_rights = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
    try:
        for paths, rights in ((read, read_rights), (write, fs)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                allowed = rights if os.path.isdir(path) else rights & file_rights
                rule = _PathBeneath(allowed, fd)
                if _libc.syscall(_SYS_ADD, ruleset, 1, ctypes.byref(rule), 0) != 0:
                    report["landlock"] = f"off: add_rule({path}) failed: {_errno_message()}"
                    os.close(fd)
                    return report
                os.close(fd)
        for fd in read_fds:
            rule = _PathBeneath(read_rights, fd)
            if _libc.syscall(_SYS_ADD, ruleset, 1, ctypes.byref(rule), 0) != 0:
                report["landlock"] = f"off: add_rule(fd {fd}) failed: {_errno_message()}"
                return report
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if _libc.syscall(_SYS_RESTRICT, ruleset, 0) != 0:
            report["landlock"] = f"off: restrict_self failed: {_errno_message()}"
            return report
    finally:
        os.close(ruleset)
    report["landlock"] = f"on (ABI {abi})"
    report["network (landlock TCP)"] = "on" if abi >= 4 else "off: Landlock ABI < 4"
    report["signals outside sandbox (landlock scope)"] = "on" if abi >= 6 else "off: Landlock ABI < 6"
    return report


# -- seccomp: Unix sockets and io_uring ---------------------------------------------------------

try:  # a ctypes binding of libseccomp (the system's libseccomp.so.2), loaded before any fork
    import pyseccomp as _seccomp
except (ImportError, OSError) as _exc:  # the package, or the system library, is missing
    _seccomp = None
    _SECCOMP_MISSING = f"off: libseccomp unavailable ({_exc})"
else:
    _SECCOMP_MISSING = ""

AF_UNIX = 1
# Refused with EPERM in the runner and everything it starts. Landlock does not cover
# connect() to a socket *file*, and a network namespace does not isolate them: a submission
# could talk to any daemon whose socket the sandbox's uid may open (/var/run/docker.sock as
# root). ``socketpair`` stays allowed: its two ends are connected to each other and to nothing
# else (multiprocessing uses it). io_uring would run socket operations past this filter.
_REFUSED_SYSCALLS = ("io_uring_setup", "io_uring_enter", "io_uring_register")


def apply_seccomp(report: Protections) -> Protections:
    """In the runner, after Landlock: no new AF_UNIX socket (pathname or abstract), no
    io_uring. The grader's channel was made before and stays usable."""
    if _seccomp is None:
        report["unix sockets (seccomp)"] = _SECCOMP_MISSING
        return report
    import errno

    try:
        refuse = _seccomp.ERRNO(errno.EPERM)
        flt = _seccomp.SyscallFilter(defaction=_seccomp.ALLOW)
        flt.add_rule(refuse, "socket", _seccomp.Arg(0, _seccomp.EQ, AF_UNIX))
        for name in _REFUSED_SYSCALLS:
            flt.add_rule(refuse, name)
        flt.load()
    except Exception as exc:  # the binding raises RuntimeError/OSError/ValueError by version
        report["unix sockets (seccomp)"] = f"off: {exc}"
        return report
    report["unix sockets (seccomp)"] = "on"
    return report


def runtime_read_paths() -> list[str]:
    """What the Python runtime needs to read: interpreter, venv, system libraries.

    The project folder itself is deliberately absent: the virtualenv is allowed by its own path,
    so ``reference/``, ``assignments/`` and the grades folder beside it stay unreadable.
    """
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             "/usr", "/lib", "/lib64", "/bin", "/proc", "/sys/devices/system/cpu",
             "/dev/urandom", "/dev/random", "/dev/zero", "/dev/null",
             "/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group",
             "/etc/nsswitch.conf", "/etc/fonts", "/etc/ssl", "/etc/matplotlibrc"}
    return sorted(p for p in paths if p and os.path.exists(p))


def scrubbed_environment(home: str) -> dict[str, str]:
    """The only variables a submission sees: no tokens, no paths into the grader's world."""
    return {
        "PATH": os.pathsep.join(p for p in (os.path.join(sys.prefix, "bin"), "/usr/local/bin",
                                            "/usr/bin", "/bin")),
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": os.path.join(home, ".matplotlib"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        GRADING_ENV: "skip",
    }
