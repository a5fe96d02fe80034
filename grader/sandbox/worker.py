"""The warm worker ("zygote") and the sandboxed processes it forks.

The grader starts ``python -m grader.sandbox.worker FD [SETUP]`` with a scrubbed environment.
The worker imports torch, numpy, matplotlib and IPython once, and what the assignment asks for
(``SETUP``, JSON: its ``preload`` modules and ``warmup.py`` scripts, see ``preload``), then
waits for ``spawn`` requests on its control socket. It never receives a reference solution, an
expected value or a notebook's content: only the path of a staged temporary folder and, as an
attached file descriptor, the socket the submission will talk to the grader on. Per request it
forks a process tree::

    worker ── holder (outside; joins cgroups, unshares namespaces, reports the exit status)
                ├── init (pid 1 of fresh user/pid/net/mount namespaces: an exec'd `sleep`)
                └── runner (pid 2; rlimits, Landlock; runs the cells, answers probes)

When init dies the kernel kills everything left in its pid namespace, so daemons, double forks
and new sessions die with it. The grader kills init by its global pid to end a submission;
the holder kills it when the runner ends on its own. Only holder and runner are forks of the
worker: copying a torch-sized address space is the costliest step of a sandbox's start.

Messages from the runner to the grader (all via ``wire``):
``hello`` (protections), ``cell`` (one per executed cell: index, status, seconds, error,
stdout, figures), ``ready`` (all cells ran), ``probe`` (one answer per request, carrying the
request's nonce), ``done``. From the grader: ``run`` (cells to skip) and ``probes``.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import shutil
import signal
import socket
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Any, Sequence

from grader import wire
from grader.execution import Limits, Protections
from grader.sandbox import confine

_PRELOADED: dict[str, Any] = {}
# Small figures at screen resolution; zlib's fastest level: the drawing, not the encoding,
# is what a student's plot needs, and level 1 saves ~5 ms per figure for a few more KiB.
_PNG: dict[str, Any] = {"format": "png", "dpi": 72, "pil_kwargs": {"compress_level": 1}}


def preload(modules: Sequence[str] = (), warmups: Sequence[str] = ()) -> None:
    """Import the heavy libraries once, before any fork, so each submission starts warm.

    ``modules`` (an assignment's ``preload``) are imported too, where they import at all: a
    notebook that needs a missing one fails on its own import, with that error in its log.
    ``warmups`` (paths of an assignment's ``warmup.py``) run once, here; one that raises
    stops the worker (``WarmupFailed``), since the instructor's code is wrong, not a student's.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy
    import torch
    import torch.nn
    import torch.nn.functional  # noqa: F401
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    import grader.probelib  # noqa: F401  (probes import it after Landlock is on)
    import grader.notebook  # noqa: F401  (the template's generated cells import it; there they do nothing)
    import grader.sandbox.runtime  # noqa: F401  (installed in each runner, after the fork)

    sleep = shutil.which("sleep")
    if sleep is None:
        raise RuntimeError("no `sleep` program on PATH: it is the sandbox's init")
    _PRELOADED["sleep"] = sleep

    # The first optimizer a process creates imports torch._dynamo (about 1 s of CPU): pay for
    # it once, here, not once per submission; and so for the assignment's ``preload``.
    import torch._dynamo  # noqa: F401
    for module in modules:
        try:
            __import__(module)
        except Exception:
            pass

    torch.set_num_threads(1)
    config = Config()
    config.HistoryManager.enabled = False
    _PRELOADED["shell_class"] = InteractiveShell
    _PRELOADED["config"] = config
    _PRELOADED["plt"] = plt
    _PRELOADED["numpy"] = numpy
    _PRELOADED["torch"] = torch
    # Warm the first-use paths (figure creation, PNG encoding) so no child pays for them: a
    # figure with what notebooks' plots commonly have (log axes, whose tick labels are
    # mathtext and slow the first time; a mathtext label, a legend, a grid) leaves each child
    # matplotlib's caches warm.
    for scale in ("log", "linear"):
        fig, axes = plt.subplots(1, 2, figsize=(8, 3))
        for ax in axes:
            x = numpy.arange(1, 21)
            ax.plot(x, numpy.exp(-x) * 10.0 ** numpy.linspace(-6, 3, 20), "o-", label="warm")
            ax.set_yscale(scale)
            ax.set_xlabel("step")
            ax.set_ylabel(r"$|\partial y / \partial x_k|$")
            ax.set_title("warm-up = 1.23")
            ax.legend()
            ax.grid(True)
        fig.savefig(io.BytesIO(), **_PNG)
        plt.close("all")
    for path in warmups:
        _run_warmup(path)
    plt.close("all")  # a warm-up's figures would be every child's first cell's
    try:  # the first formatted traceback loads linecache and friends
        raise ValueError("warm")
    except ValueError as exc:
        traceback.format_exception(type(exc), exc, exc.__traceback__)
    shell = InteractiveShell(config=config)  # type: ignore[no-untyped-call]
    shell.run_cell(  # type: ignore[no-untyped-call]
        "import torch\ntorch.optim.Adam([torch.zeros(1, requires_grad=True)])",
                   store_history=False, silent=True)
    del shell
    # A pristine shell, made once: every child inherits a copy with an empty namespace.
    _PRELOADED["shell"] = _configure_shell(InteractiveShell(config=config))  # type: ignore[no-untyped-call]
    # Move everything imported so far out of the collector's reach: a child's first full
    # collection would otherwise walk (and copy-on-write) every object torch created.
    import gc

    gc.collect()
    gc.freeze()


class WarmupFailed(Exception):
    """An assignment's warm-up script failed: the message gives the file and the line."""


def _run_warmup(path: str) -> None:
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WarmupFailed(f"warm-up script {path}: cannot read it ({exc})") from None
    try:
        exec(compile(source, path, "exec"), {"__name__": "__warmup__", "__file__": path})
    except (Exception, SystemExit) as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
        where = f", line {frames[-1].lineno}" if frames else ""
        if isinstance(exc, SyntaxError) and exc.filename == path:
            where = f", line {exc.lineno}"
        raise WarmupFailed(f"warm-up script {path}{where} raised "
                           f"{type(exc).__name__}: {exc}") from None


# -- the worker loop ------------------------------------------------------------------------------

def serve(control: socket.socket) -> None:
    holders: set[int] = set()
    try:
        _serve(control, holders)
    finally:
        # The grader is gone (killed outright: its end of the socket closed) or said exit:
        # no sandbox of ours outlives it. A holder's SIGTERM kills its init, and with it the
        # sandbox's pid namespace, then the runner (see _holder).
        for pid in holders:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass


def _serve(control: socket.socket, holders: set[int]) -> None:
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(control, 1 << 16, 4)
        except OSError:
            return
        if not msg:
            return
        request = _decode_control(msg)
        if request["cmd"] == "spawn":
            pid = os.fork()
            if pid == 0:
                control.close()
                _holder(socket.socket(fileno=fds[0]), request)
            holders.add(pid)
            for fd in fds:
                os.close(fd)
            control.sendall(_encode_control({"pid": pid}))
        elif request["cmd"] == "reap":
            # wait4's usage includes the holder's reaped descendants: the runner's peak RSS.
            _, status, usage = os.wait4(int(request["pid"]), 0)
            holders.discard(int(request["pid"]))
            control.sendall(_encode_control({"status": status, "maxrss_kb": usage.ru_maxrss}))
        elif request["cmd"] == "exit":
            return


def _encode_control(message: dict[str, Any]) -> bytes:
    import json

    return json.dumps(message).encode()


def _decode_control(raw: bytes) -> dict[str, Any]:
    import json

    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("bad control message")
    return data


# -- the forked tree -----------------------------------------------------------------------------

def _holder(sock: socket.socket, request: dict[str, Any]) -> None:
    """Outside the namespaces: join cgroups, unshare, start init and the runner, report."""
    code = 70
    init = 0
    runner = 0

    def on_term(_sig: int, _frame: Any) -> None:  # the worker is going: end this sandbox
        for pid in (init, runner):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        os._exit(143)

    signal.signal(signal.SIGTERM, on_term)
    try:
        os.setsid()
        for path in request.get("cgroups", []):
            try:
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            except OSError:
                pass
        disabled = set(request.get("disable", []))
        if request.get("confine", True):
            report = _become_unprivileged(request, disabled)
            if "namespaces" in disabled:
                off = f"off: disabled by ${confine.DISABLE_VARIABLE}"
                report.update({"user namespace": off, "pid namespace": off,
                               "network namespace": off, "mount namespace": off})
            else:
                report.update(confine.enter_namespaces(outer_uid=os.getuid(),
                                                       outer_gid=os.getgid()))
        else:
            report = {"everything": "off: unconfined (benchmark)"}
        if report.get("pid namespace") == "on":
            # The first child becomes pid 1; when it dies, the kernel kills the namespace.
            # It only has to exist, so it is a small program, not a fork of this process
            # (copying torch's page tables costs more than the rest of the start-up). Its
            # lifetime is a backstop for when grader and worker both die; otherwise the
            # grader kills it, or this holder does once the runner is gone.
            init = os.posix_spawn(_PRELOADED["sleep"], ["sleep", str(int(request["lifetime"]))],
                                  {}, setsid=True)
        go_r, go_w = os.pipe()
        runner = os.fork()
        if runner == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.close(go_w)
            os.read(go_r, 1)
            os.close(go_r)
            _runner(sock, request, report)
        os.close(go_r)
        # Killing init ends everything in the namespace; without one, the runner is the target.
        wire.send(sock, {"type": "spawned", "init_pid": init or runner})
        sock.close()
        os.write(go_w, b"g")
        os.close(go_w)
        _, status = os.waitpid(runner, 0)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
    finally:
        if init:
            try:
                os.kill(init, signal.SIGKILL)
                os.waitpid(init, 0)
            except OSError:
                pass
        os._exit(code)


# Prefix -> descriptor of the Python runtime folders the sandbox uid reaches only that way
# (confine.open_unreachable_runtime); set in the holder, used by its runner.
_RUNTIME_FDS: dict[str, int] = {}


def _become_unprivileged(request: dict[str, Any], disabled: set[str]) -> Protections:
    """As root: hand the staged folder to the sandbox's uid, then become it, before the
    namespaces (whose "root" would otherwise be the host's) and before any student code.

    Still here, outside: the cgroups are joined (writing ``cgroup.procs`` needs root) and the
    rlimits come later, in the runner (lowering a limit needs no privilege)."""
    if os.geteuid() != 0:
        return {confine.UID_KEY: "on (not root)"}
    if "uid" in disabled:
        return {confine.UID_KEY: f"off: disabled by ${confine.DISABLE_VARIABLE}"}
    try:
        uid, gid = int(request["uid"]), int(request["gid"])
        blocked = confine.unreachable_ancestor(request["workdir"], uid, gid)
        if blocked:
            return {confine.UID_KEY: f"off: uid {uid} cannot reach the staged folder ({blocked} "
                                     "is not searchable by others; set TMPDIR to a folder that is, "
                                     "such as /tmp)"}
        # The venv and the grader's own package are imported from by path (matplotlib even
        # resolves its ``__file__``): behind a folder only root may pass (a clone in root's
        # home or in ``mktemp -d``), the uid could not run a notebook at all. The sandbox then
        # keeps root, confined by the namespaces and Landlock alone, or is refused.
        what, blocked = confine.unreachable_grader(uid, gid)
        if blocked:
            return {confine.UID_KEY: f"off: uid {uid} cannot reach the grader's {what} "
                                     f"({blocked} is not searchable by others; install the "
                                     "grader where other users can read it)"}
        confine.hand_over(request["workdir"], uid, gid)
        _RUNTIME_FDS.update(confine.open_unreachable_runtime(uid, gid))
        confine.drop_privileges(uid, gid, keep_dumpable="namespaces" not in disabled)
    except (OSError, KeyError, ValueError) as exc:
        if os.geteuid() == 0:
            return {confine.UID_KEY: f"off: {exc}"}
        os._exit(70)  # half changed: never run anything in that state
    return {confine.UID_KEY: f"on ({request.get('identity', f'uid {uid}')})"}


class _CellTimeout(BaseException):
    """Raised inside student code when its cell's soft time limit passes."""


class _CappedText(io.TextIOBase):
    """stdout/stderr replacement that keeps the first ``cap`` characters and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        s = str(s)
        room = self.cap - self.kept
        if room > 0:
            self.parts.append(s[:room])
            self.kept += min(room, len(s))
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def take(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[... {self.dropped} more characters of output not kept]"
        self.parts, self.kept, self.dropped = [], 0, 0
        return text


def _runner(sock: socket.socket, request: dict[str, Any], report: Protections) -> None:
    code = 0
    try:
        confine.die_with_parent()
        os.setsid()  # its own session and process group, inside the sandbox
        if request.get("confine", True):
            report = confine.finish_namespaces(report)
        code = _run_session(sock, request, report)
    except BaseException:  # the channel broke or the student broke the runtime: just die
        code = 71
    finally:
        os._exit(code)


def _run_session(sock: socket.socket, request: dict[str, Any], report: Protections) -> int:
    workdir = request["workdir"]
    limits = Limits(**request["limits"])
    if not request.get("cgroups"):
        # No cgroup caps the sandbox's total memory, only each process's: keep the product small.
        limits = dataclasses.replace(limits, max_processes=min(limits.max_processes, 6))
    runner_pid = os.getpid()

    def forked_child() -> None:
        # A process the student forks must never speak on the grader's channel: it loses the
        # socket at once, and leaves (see below) if it ever returns into this runtime.
        try:
            sock.close()
        except OSError:
            pass

    os.register_at_fork(after_in_child=forked_child)
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(confine.scrubbed_environment(workdir))
    for stream_fd in (0, 1, 2):
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, stream_fd)
        os.close(null)
    if request.get("confine", True):
        report = confine.apply_rlimits(limits, report)
        if report.get(confine.UID_KEY, "").startswith("on (uid"):
            # Before Landlock, which would hide what the uid alone may reach.
            report = confine.check_out_of_reach(secrets=request.get("secrets", []),
                                                code=request.get("code", []), report=report)
        confine.reroute_runtime(_RUNTIME_FDS)
        if "landlock" in request.get("disable", []):
            report["landlock"] = f"off: disabled by ${confine.DISABLE_VARIABLE}"
        else:
            report = confine.apply_landlock(read=confine.runtime_read_paths() + [workdir],
                                            write=[workdir, "/dev/null"], report=report,
                                            read_fds=_RUNTIME_FDS.values())
            report = confine.credit_landlock(report)
        report = confine.apply_seccomp(report)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    wire.send(sock, {"type": "hello", "protections": report})

    order = wire.recv(sock)
    if order is None or order.get("type") != "run":
        return 72
    cells: list[str] = list(order["cells"])
    skip = set(order.get("skip", []))
    numbers: list[int] = list(order.get("numbers") or range(1, len(cells) + 1))
    out = _CappedText(limits.output_kb * 1024)
    shell = _new_shell(out)
    from grader.sandbox import runtime

    runtime.install(shell)

    def on_alarm(_sig: int, _frame: Any) -> None:
        raise _CellTimeout()

    # Limits that can cost points count CPU time (ITIMER_PROF: this process, all its threads),
    # so a score never depends on how busy the machine is; the grader's wall-clock limits are
    # only a generous backstop (execution.WALL_FACTOR).
    signal.signal(signal.SIGPROF, on_alarm)
    # Budgets are per thread: N threads may spend N CPU seconds per second of wall time.
    threads = max(1, int(getattr(limits, "threads", 1)))
    torch_threads(threads)
    notebook_end = time.process_time() + limits.notebook_seconds * threads
    # Set once a cell is stopped by the notebook's budget: the timer and process_time() may
    # disagree by a tick, and a sliver of budget left must not let the next cells run on some
    # machines and not others.
    notebook_spent = False
    for index, source in enumerate(cells):
        if index in skip:
            continue
        wire.send(sock, {"type": "cell_start", "index": index})
        started = time.perf_counter()
        status, error = "ok", None
        cell_budget = limits.cell_seconds * threads
        budget = min(cell_budget, notebook_end - time.process_time())
        if budget <= 0 or notebook_spent:
            wire.send(sock, {"type": "cell", "index": index, "status": "timeout", "seconds": 0.0,
                             "error": {"ename": "TimeoutError", "evalue": "the notebook's time "
                                       "limit was reached before this cell", "traceback": ""},
                             "stdout": "", "figures": []})
            continue
        sys.stdout = sys.stderr = out
        # The number Jupyter shows after Run All: frames of this cell's code then name it
        # (<ipython-input-N-…>), and so do messages (probelib.student_traceback).
        shell.execution_count = numbers[index]
        try:
            signal.setitimer(signal.ITIMER_PROF, budget)
            result = shell.run_cell(source, store_history=False, silent=False)
            signal.setitimer(signal.ITIMER_PROF, 0)
            exc = result.error_in_exec or result.error_before_exec
            if exc is not None:
                status = "timeout" if isinstance(exc, _CellTimeout) else "error"
                error = _describe(exc, shell)
        except _CellTimeout as exc:
            status, error = "timeout", _describe(exc, shell)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        notebook_spent = status == "timeout" and budget < cell_budget
        if os.getpid() != runner_pid:
            os._exit(0)
        wire.send(sock, {"type": "cell", "index": index, "status": status,
                         "seconds": time.perf_counter() - started, "error": error,
                         "stdout": out.take(), "figures": _take_figures()})
    wire.send(sock, {"type": "ready", "notes": runtime.take_notes()[:50]})

    probes = wire.recv(sock)
    if probes is None or probes.get("type") != "probes":
        return 0
    module = types.ModuleType("probes")
    exec(compile(probes["source"], "<probes>", "exec"), module.__dict__)
    from grader import probelib

    stubs = probelib.declared_stub_messages(module)
    nonce = probes["nonce"]
    for item in probes["requests"]:
        answer = _answer(module, shell.user_ns, item, nonce, limits, out, stubs)
        if os.getpid() != runner_pid:
            os._exit(0)
        try:
            wire.send(sock, answer)
        except wire.WireError as exc:  # e.g. a gigantic output: refuse it, keep answering
            wire.send(sock, {"type": "probe", "id": item["id"], "nonce": nonce, "ok": False,
                             "error": {"kind": "error", "ename": "OutputTooLarge",
                                       "evalue": str(exc), "traceback": ""}})
    wire.send(sock, {"type": "done", "nonce": nonce})
    return 0


def _answer(module: types.ModuleType, ns: dict[str, Any], item: dict[str, Any], nonce: str,
            limits: Limits, out: _CappedText, stubs: tuple[str, ...]) -> dict[str, Any]:
    from grader import probelib

    reply: dict[str, Any] = {"type": "probe", "id": item["id"], "nonce": nonce}
    sys.stdout = sys.stderr = out
    try:
        signal.setitimer(signal.ITIMER_PROF, limits.probe_seconds * max(1, limits.threads))
        args = {k: wire.decode_value(v) for k, v in item["args"].items()}
        value = getattr(module, item["probe"])(ns, **args)
        signal.setitimer(signal.ITIMER_PROF, 0)
        reply.update(ok=True, value=wire.encode_value(value))
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_PROF, 0)
        reply.update(ok=False, error=probelib.describe_failure(exc, stub_messages=stubs))
        if isinstance(exc, _CellTimeout):
            reply["error"]["kind"] = "timeout"
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        out.take()
    return reply


def torch_threads(n: int) -> None:
    """Intra-op threads for the submission (``--threads``): each one's CPU counts in its limits."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    _PRELOADED["torch"].set_num_threads(n)


def _new_shell(out: _CappedText) -> Any:
    if "shell" in _PRELOADED:
        return _PRELOADED["shell"]
    return _configure_shell(_PRELOADED["shell_class"](config=_PRELOADED["config"]))


def _configure_shell(shell: Any) -> Any:
    # Keep our Agg backend: %matplotlib inline would route figures to a display we don't have.
    shell.register_magic_function(lambda line="": None, "line", "matplotlib")
    shell.showtraceback = lambda *a, **k: None  # errors are reported structurally, not printed
    return shell


def _describe(exc: BaseException, shell: Any) -> dict[str, str]:
    from grader import probelib

    if isinstance(exc, _CellTimeout):
        return {"ename": "TimeoutError", "evalue": "cell exceeded its CPU time limit", "traceback": ""}
    # Cells run before the probes arrive, so without the assignment's STUB_MESSAGES: a cell
    # error's kind is not scored (a probe's answer is, and it has them).
    return probelib.describe_failure(exc)


def _take_figures() -> list[str]:
    plt = _PRELOADED["plt"]
    images = []
    for num in plt.get_fignums()[:8]:
        buf = io.BytesIO()
        try:
            plt.figure(num).savefig(buf, **_PNG)
            images.append(base64.b64encode(buf.getvalue()).decode())
        except Exception:
            pass
    plt.close("all")
    return images


# -- kept warm between runs (sandbox.warm) ---------------------------------------------------

ANOTHER_LISTENER = 3  # exit status: a live listener already serves this path


def listen(path: str, idle: float, setup: dict[str, Any]) -> None:
    """Preload once, then serve every run that connects to the Unix socket ``path``: each
    connection gets a fork of this process, which is then exactly a freshly started worker
    (``serve``) whose imports are already done. Ends after ``idle`` seconds without a new
    connection, once every fork it made has ended.

    Student code never runs here, nor in the forks (only in the sandboxes they fork), so this
    process stays as pristine as a new one. The socket is reachable by its owner alone (a 0700
    folder, checked by ``sandbox.warm``; mode 0600), a peer of another uid is turned away, and
    every sandbox refuses new Unix sockets (seccomp) besides."""
    from grader.files import private_tmpdir

    # Named after this pid, so no later run's sweep takes it while this process lives.
    home = str(private_tmpdir("warm"))
    os.environ.update({"HOME": home, "TMPDIR": home,
                       "MPLCONFIGDIR": os.path.join(home, ".matplotlib")})
    os.chdir(home)
    try:
        _preload_or_exit(setup)  # the starter shows this log's last lines
        server = _bind_once(path)
        if server is None:
            sys.exit(ANOTHER_LISTENER)
        token = _write_token(path)
        _accept_until_idle(server, path, idle, token)
        try:  # its log: nothing went wrong worth keeping
            os.unlink(os.path.splitext(path)[0] + ".log")
        except OSError:
            pass
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _bind_once(path: str) -> socket.socket | None:
    """A listening socket at ``path``, unless a live listener holds it (then None). Bound under
    a private name, then linked into place: two listeners started at once never take each
    other's path; one left by a killed listener (it refuses connections) is replaced."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    private = f"{path}.{os.getpid()}"
    old = os.umask(0o077)
    try:
        server.bind(private)
    finally:
        os.umask(old)
    try:
        for _ in range(3):
            try:
                os.link(private, path)
                break
            except FileExistsError:
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(path)
                except OSError:  # stale: its listener is gone
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                    continue
                finally:
                    probe.close()
                server.close()
                return None
        else:
            server.close()
            return None
    finally:
        os.unlink(private)
    server.listen(16)
    return server


def _write_token(path: str) -> bytes:
    """A secret each run must send first, kept beside the socket (0600): a process that could
    reach the socket but not read the user's cache folder (a sandbox: Landlock, or another
    uid) is turned away even where seccomp could not stop it making a Unix socket."""
    import secrets

    token = secrets.token_hex(32).encode()
    final = os.path.splitext(path)[0] + ".token"
    temporary = f"{final}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, token)
    finally:
        os.close(fd)
    os.replace(temporary, final)
    return token


def _accept_until_idle(server: socket.socket, path: str, idle: float, token: bytes) -> None:
    bound = os.stat(path).st_ino
    forks: set[int] = set()
    last = time.monotonic()
    while True:
        for pid in list(forks):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                forks.discard(pid)
        left = idle - (time.monotonic() - last)
        if left <= 0 and not forks:
            break
        server.settimeout(min(max(left, 0.2), 5.0))
        try:
            conn, _ = server.accept()
        except socket.timeout:
            continue
        last = time.monotonic()
        _fork_for(conn, server, forks, token)
    # No new run finds this path any more; one that connected just before is still served.
    try:
        if os.stat(path).st_ino == bound:
            os.unlink(path)
    except FileNotFoundError:
        pass
    server.setblocking(False)
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            break
        _fork_for(conn, server, forks, token)
    server.close()
    try:
        os.unlink(os.path.splitext(path)[0] + ".token")
    except OSError:
        pass


def _fork_for(conn: socket.socket, server: socket.socket, forks: set[int], token: bytes
              ) -> None:
    import hmac
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.geteuid():
        conn.close()
        return
    conn.setblocking(True)
    pid = os.fork()
    if pid == 0:
        try:
            server.close()
            conn.settimeout(10)
            said = b""
            while len(said) < len(token):
                part = conn.recv(len(token) - len(said))
                if not part:
                    break
                said += part
            if not hmac.compare_digest(said, token):
                os._exit(0)
            conn.settimeout(None)
            conn.sendall(_encode_control({"ready": True, "pid": os.getpid()}))
            serve(conn)
        finally:
            os._exit(0)
    forks.add(pid)
    conn.close()


def _preload_or_exit(setup: dict[str, Any]) -> None:
    """``preload`` what ``setup`` asks for; a failed warm-up is one line on stderr, exit 1."""
    try:
        preload([str(m) for m in setup.get("preload", [])],
                [str(p) for p in setup.get("warmup", [])])
    except WarmupFailed as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


def main() -> None:
    if sys.argv[1] == "--listen":
        listen(sys.argv[2], float(sys.argv[3]), _decode_control(sys.argv[4].encode()))
        os._exit(0)
    fd = int(sys.argv[1])
    setup = _decode_control(sys.argv[2].encode()) if len(sys.argv) > 2 else {}
    control = socket.socket(fileno=fd)
    _preload_or_exit(setup)  # the grader reads stderr when no "ready" comes (local.Worker)
    control.sendall(b'{"ready": true}')
    serve(control)
    # Nothing to flush or save: skip the interpreter's teardown of torch and friends, which
    # kept the grader waiting ~0.4 s at every run's end (Worker.close).
    os._exit(0)


if __name__ == "__main__":
    main()
