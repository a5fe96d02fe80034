"""Run one notebook in the sandbox and bring back plain results: the grader's side of the boundary.

Time limits and the kernel lifecycle live here and nowhere else. The child enforces a *soft*
limit per cell (an exception raised in the student's code); this module enforces the *hard*
one: when a cell or a probe overruns its limit plus a grace period, or the child dies, the
whole process tree is killed and the notebook is run again without the offending cell (or
probe), so a hung or crashed submission keeps what it earned elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import queue
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from grader import wire
from grader.execution import (GRACE_SECONDS, WALL_FACTOR, CellOutcome, Execution, Limits,
                              ProbeAnswer, Requests)
from grader.sandbox import confine as sandbox
from grader.sandbox import warm
from grader.errors import InputError, SandboxError, WorkerLost
from grader.files import atomic_write, private_tmpdir, read_capped, sweep_stale_tmpdirs
from grader.submission import code_cell_number

START_SECONDS = 30.0  # for a sandbox to report in: generous, a loaded machine forks slowly
MAX_ATTEMPTS = 4
# The warm worker answers each control request (fork a sandbox, reap one) in milliseconds; one
# silent this long is stopped (SIGSTOP) or hung: it is killed and the run told, never waited on.
CONTROL_SECONDS = 120.0
# Figures are base64 PNG text from the child, kept in the grader's memory and written into the
# grades folder: a plot at 72 dpi is tens of KiB, so these bounds cost an honest notebook
# nothing and a forged "figure" flood at most this much.
MAX_FIGURE_CHARS_PER_CELL = 2 * 2**20
MAX_FIGURE_CHARS_PER_SUBMISSION = 8 * 2**20


@dataclass
class _Session:
    cells: dict[int, CellOutcome] = field(default_factory=dict)
    answers: dict[str, ProbeAnswer] = field(default_factory=dict)
    protections: dict[str, str] = field(default_factory=dict)
    killed_cell: int | None = None
    killed_probe: str | None = None
    reason: str = ""
    fatal: str = ""
    notes: tuple[str, ...] = ()
    figure_chars: int = 0
    figures_dropped: int = 0

    def keep_figures(self, raw: Any) -> tuple[str, ...]:
        """The figures of one ``cell`` message that fit the per-cell and per-submission caps."""
        kept: list[str] = []
        cell_chars = 0
        for fig in (raw if isinstance(raw, list) else [])[:8]:
            if not isinstance(fig, str):
                raise wire.WireError("malformed figure")
            if (cell_chars + len(fig) > MAX_FIGURE_CHARS_PER_CELL
                    or self.figure_chars + len(fig) > MAX_FIGURE_CHARS_PER_SUBMISSION):
                self.figures_dropped += 1
                continue
            cell_chars += len(fig)
            self.figure_chars += len(fig)
            kept.append(fig)
        return tuple(kept)


@dataclass(frozen=True)
class _Slot:
    """What one submission at a time uses: cgroups of its own and, as root, a uid of its own."""
    cgroups: list[Path]
    identity: dict[str, Any]


class Worker:
    """One warm worker process serving up to ``slots`` submissions at once.

    Every sandbox is forked from the same warm process, so one worker serves any number of
    slots (see grading.run.run_parallel). Each slot has cgroups of its own, so one submission's
    memory or process bomb never touches its neighbour.
    Thread-safe: call ``run`` from up to ``slots`` threads. Use as a context manager.
    """

    def __init__(self, *, limits: Limits, slots: int = 1, confine: bool = True,
                 preload: Sequence[str] = (), warmup: Sequence[Path] = (),
                 wait: bool = True, font_cache: Path | None = None,
                 secret_paths: Sequence[Path] = (), allow_unprotected: bool = False,
                 keep_warm: float = 0) -> None:
        """``confine=False`` runs without any protection: only for measuring what it costs.

        ``preload`` (modules) and ``warmup`` (scripts) are the assignments' own warm-up
        (``spec.Assignment.preload`` and ``.warmup_path``), done once in the worker before it
        serves; a warm-up script that fails stops it with a ``SandboxError`` naming the file.

        ``wait=False`` returns as soon as the process is started: its seconds of imports then
        overlap the caller's own preparation, and the first ``run`` (or ``wait_ready``) waits
        for it; a worker that failed to start raises ``SandboxError`` there. ``font_cache`` is a
        folder that keeps matplotlib's font list between runs (building it costs each start
        about 0.4 s of CPU); the worker's own copy stays in its private home as before.

        As root, student code runs as an unprivileged uid of its own (``confine.drop_privileges``);
        ``secret_paths`` (the checks, reference, grades and cache folders) are what that uid must not
        read, checked in each sandbox and reported. A sandbox that would leave student code
        unconfined (``confine.unconfined_reason``) raises ``SandboxError`` before any of its code
        runs, unless ``allow_unprotected``.

        ``keep_warm`` (seconds) takes the process from a listener kept between runs
        (``sandbox.warm``), started now if none serves this fingerprint, which then ends after
        that long without a run; ``warm_note`` says which. Where no private folder can hold
        its socket, the worker starts as usual and ``warm_note`` says why.
        """
        for script in warmup:
            if not script.is_file():
                raise SandboxError(f"warm-up script {script}: no such file")
        self.limits = limits
        self.confine = confine
        self.allow_unprotected = allow_unprotected
        self._disable = sandbox.disabled_layers() if confine else []
        drop = confine and os.geteuid() == 0 and "uid" not in self._disable
        shared = ({"secrets": _secret_paths(secret_paths), "code": _code_paths()} if drop else {})
        self.peak_child_rss_kb = 0
        self._lock = threading.Lock()
        self._live_lock = threading.Lock()
        self._live: dict[int, int] = {}  # holder pid -> pidfd of its sandbox's init
        self._cancelled = threading.Event()
        self._free: queue.Queue[_Slot] = queue.Queue()
        self._all_cgroups: list[Path] = []
        # What a run killed outright (kill -9) left: its staged copies, its worker's home and
        # its cgroups (with any sandbox still sleeping in them). Named after their run's pid,
        # they are removed once that pid is gone.
        sweep_stale_tmpdirs()
        if confine:
            sandbox.sweep_orphan_cgroups()
        base = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.cgroup_report: dict[str, str] = {"cgroups": "off: unconfined (benchmark)"}
        for k in range(max(1, slots)):
            paths: list[Path] = []
            if confine:
                paths, self.cgroup_report = sandbox.make_cgroups(f"{base}-{k}", limits)
            self._all_cgroups += paths
            identity: dict[str, Any] = {}
            if drop:
                uid, gid, described = sandbox.sandbox_identity(k)
                identity = {"uid": uid, "gid": gid, "identity": described, **shared}
            self._free.put(_Slot(paths, identity))
        self._ready_lock = threading.Lock()
        self._restart_lock = threading.Lock()
        self._generation = 0  # which process serves: a lost one is replaced once, by one slot
        self._lost_reasons: dict[int, tuple[int, str]] = {}
        self._font_cache = font_cache
        self._home = str(private_tmpdir("worker"))
        setup = {"preload": list(preload), "warmup": [str(script.resolve()) for script in warmup]}
        self._setup = json.dumps(setup)
        self._keep_warm = keep_warm
        self._listener: subprocess.Popen[bytes] | None = None  # one this run started
        self._warm_path: Path | None = None
        self.warm_note = ""
        if keep_warm > 0:
            found = warm.socket_path(warm.fingerprint(setup))
            if isinstance(found, Path):
                self._warm_path = found
            else:
                self.warm_note = f"no warm worker kept: {found}"
        self._start_process()
        if wait:
            try:
                self.wait_ready()
            except SandboxError:
                self.close()
                raise

    def _environment(self) -> dict[str, str]:
        env = sandbox.scrubbed_environment(self._home)
        env.pop("HOME")
        env["HOME"] = self._home
        # Transparent huge pages for the worker's heap: each fork then copies one page-table
        # entry per 2 MiB instead of 512, and it forks twice per submission. Measured on
        # the worker with torch loaded: fork+exit 26 -> 13 ms. A no-op where THP is off. The
        # submission's own environment is replaced (worker._run_session), so it never sees this.
        env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
        return env

    def _start_process(self) -> None:
        self._start_error: str | None = None  # None: not yet known; "": serving
        if self._warm_path is not None:
            self._start_warm(self._warm_path)
            return
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = self._environment()
        _copy_font_lists(self._font_cache, Path(env["MPLCONFIGDIR"]))
        self._proc: subprocess.Popen[bytes] | _Forked = subprocess.Popen(
            [sys.executable, "-m", "grader.sandbox.worker", str(child.fileno()), self._setup],
            pass_fds=[child.fileno()], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self._home,
        )
        child.close()
        self._control = parent

    def _start_warm(self, path: Path) -> None:
        """A fork of the listener at ``path``, now if one serves; otherwise a new listener,
        connected to once its imports are done (``_await_ready``), as a new worker would be."""
        self._listener = None
        got = warm.connect(path)
        if got is None:
            env = self._environment()
            env["TMPDIR"] = tempfile.gettempdir()  # where the listener makes its own home
            self._listener = warm.start(path, self._setup, self._keep_warm, env)
            self._proc = self._listener
            self._control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # until adopted
            self.warm_note = (f"started a warm worker (pid {self._listener.pid}) for later "
                              f"runs; it ends after {self._keep_warm:g} s without one")
            return
        self._adopt(*got)
        self.warm_note = f"used the warm worker kept by an earlier run ({path.name})"

    def _adopt(self, control: socket.socket, pid: int) -> None:
        """A fork of the listener serves: it said "ready" when it connected (warm.connect)."""
        self._control = control
        self._proc = _Forked(pid)

    def _lost(self, generation: int, why: str) -> _Lost:
        """What every slot's call is told once this process is lost: the first reason seen
        (after a stall, the slots behind it find a dead socket; the stall is the news)."""
        first = self._lost_reasons.setdefault(generation, (self._proc.pid, why))
        return _Lost(generation, *first)

    def _replace(self, generation: int) -> None:
        """Kill the lost process of ``generation`` and start and await a new one. Every slot
        whose run it lost calls this; only the first replaces it, the others use the new one."""
        with self._restart_lock:
            if self._generation != generation or self._cancelled.is_set():
                return
            with self._lock, self._ready_lock:
                lost = self._proc
                lost.kill()
                lost.wait()
                if lost.stderr is not None:
                    lost.stderr.close()
                self._control.close()
                self._start_process()
                self._generation += 1
        self.wait_ready()

    def wait_ready(self) -> None:
        """Until the worker has imported everything and serves; ``SandboxError`` if it can't.

        Thread-safe: the first caller waits, the others wait for it and share its outcome."""
        with self._ready_lock:
            if self._start_error is None:
                self._start_error = self._await_ready()
        if self._start_error:
            raise SandboxError(self._start_error)

    def _await_ready(self) -> str:
        if self._warm_path is not None:
            if not isinstance(self._proc, _Forked):  # a listener of this run's, importing
                try:
                    self._adopt(*warm.await_listener(self._warm_path, self._listener))
                except SandboxError as exc:
                    return str(exc)
            return ""
        self._control.settimeout(120)
        try:
            ready = self._control.recv(1 << 16)
        except OSError as exc:
            ready = b""
            detail = str(exc)
        else:
            detail = ""
        if not ready:
            if self._cancelled.is_set():
                return "the run was interrupted"
            self._proc.kill()  # stuck in its imports, or gone: either way it serves no one
            stderr = self._proc.stderr.read().decode(errors="replace")[-2000:] if self._proc.stderr else ""
            self._proc.wait()
            return f"the grading worker failed to start: {detail or stderr.strip()}"
        self._control.settimeout(None)
        # Before any sandbox is forked: only the worker's own imports wrote this font list.
        _copy_font_lists(Path(self._home) / ".matplotlib", self._font_cache)
        return ""

    def rss_kb(self) -> int:
        """The warm worker's own resident memory now."""
        try:
            for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._warm_path is not None and self._proc is self._listener:
            # A listener still importing (every log was reused): it is the later runs' now.
            self._proc = _Forked(-1)
        elif self._start_error != "":
            # Still importing (nobody needed it: every log was reused), or failed: nothing
            # of it is worth an orderly exit.
            self._proc.kill()
        try:
            self._control.sendall(b'{"cmd": "exit"}')
        except OSError:
            pass
        self._control.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        sandbox.remove_cgroups(self._all_cgroups)
        # Matplotlib and font caches of the worker: nothing of a run may stay in $TMPDIR.
        shutil.rmtree(self._home, ignore_errors=True)

    def cancel(self) -> None:
        """Kill every sandbox now running and refuse new ones (an interrupted run).

        Each ``run`` in flight returns soon after, with what its submission had done."""
        self._cancelled.set()
        if self._start_error is None:  # a run waiting for the worker's start stops waiting
            self._proc.kill()
        with self._live_lock:
            pidfds = list(self._live.values())
        for pidfd in pidfds:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                pass

    def _control_call(self, message: dict[str, Any], fds: list[int] | None = None) -> dict[str, Any]:
        data = json.dumps(message).encode()
        with self._lock:  # one request, one reply: slots take turns on the control socket
            self.wait_ready()  # a replaced process says "ready" first
            generation = self._generation
            self._control.settimeout(CONTROL_SECONDS)
            try:
                if fds:
                    socket.send_fds(self._control, [data], fds)
                else:
                    self._control.sendall(data)
                reply = self._control.recv(1 << 16)
            except socket.timeout:
                self._proc.kill()
                raise self._lost(generation, f"made no progress for {CONTROL_SECONDS:g} s "
                                             "(stopped or hung)") from None
            except OSError as exc:  # killed: a broken pipe or a reset connection
                raise self._lost(generation, f"died ({exc.strerror or exc})") from None
            if not reply:
                raise self._lost(generation, "died")
        result = json.loads(reply)
        if not isinstance(result, dict):
            raise SandboxError("the grading worker sent a malformed reply")
        return result

    # -- public entry point ------------------------------------------------------------------

    def run(self, *, workdir: Path, cells: list[str | None], probes_source: str,
            requests: Requests) -> Execution:
        """Execute the code ``cells`` (None marks a markdown cell) in ``workdir``, then ask each
        probe request; around a hang or a crash, run again without the culprit."""
        self.wait_ready()
        slot = self._free.get()
        try:
            try:
                return self._run(workdir, cells, probes_source, requests, slot)
            except _Lost as lost:
                if self._cancelled.is_set():
                    raise SandboxError("the run was interrupted") from None
                said = str(lost)
                self._replace(lost.generation)
            # Once: a worker lost again on the same submission is the machine's trouble, and
            # the run stops saying so rather than grade the class at two minutes a student.
            try:
                execution = self._run(workdir, cells, probes_source, requests, slot)
            except _Lost as again:
                raise WorkerLost(f"{said}; the new one {again.why} too, on the same "
                                 "submission") from None
            return replace(execution, events=(f"{said}; killed it, started a new one and "
                                              "graded this submission again from its start",
                                              *execution.events))
        finally:
            self._free.put(slot)

    def _run(self, workdir: Path, cells: list[str | None], probes_source: str,
             requests: Requests, slot: _Slot) -> Execution:
        started = time.perf_counter()
        code_cells = [i for i, c in enumerate(cells) if c is not None]
        not_code = {i for i, c in enumerate(cells) if c is None}
        skip: dict[int, CellOutcome] = {}
        dropped: dict[str, ProbeAnswer] = {}
        events: list[str] = []
        session = _Session()
        attempts = 0
        for attempts in range(1, MAX_ATTEMPTS + 1):
            pending = {k: v for k, v in requests.items() if k not in dropped}
            session = self._session(workdir, cells, set(skip) | not_code, probes_source, pending,
                                    slot)
            if session.fatal or self._cancelled.is_set():
                events.append(session.fatal or "the run was interrupted")
                break
            if session.killed_cell is not None:
                i = session.killed_cell
                skip[i] = CellOutcome(i, "killed", error={"ename": "Killed", "evalue": session.reason,
                                                          "traceback": ""})
                events.append(f"cell {i + 1}: {session.reason}; ran the notebook again without it")
                continue
            if session.killed_probe is not None:
                dropped[session.killed_probe] = ProbeAnswer(False, error={
                    "kind": "killed", "ename": "Killed", "evalue": session.reason, "traceback": ""})
                events.append(f"check input {session.killed_probe}: {session.reason}; "
                              "ran the notebook again without it")
                continue
            break
        outcomes = []
        for i in code_cells:
            if i in skip:
                outcomes.append(skip[i])
            else:
                outcomes.append(session.cells.get(i, CellOutcome(i, "not_run")))
        answers = {**session.answers, **dropped}
        notes = session.notes
        if session.figures_dropped:
            notes += (f"{session.figures_dropped} figure(s) not kept: over the "
                      f"{MAX_FIGURE_CHARS_PER_CELL // 2**20} MiB per cell or "
                      f"{MAX_FIGURE_CHARS_PER_SUBMISSION // 2**20} MiB per submission limit",)
        return Execution(tuple(outcomes), answers, {**self.cgroup_report, **session.protections},
                         tuple(events), time.perf_counter() - started, attempts, notes)

    # -- one sandboxed process tree ------------------------------------------------------------

    def _session(self, workdir: Path, cells: list[str | None], skip: set[int], probes_source: str,
                 requests: Requests, slot: _Slot) -> _Session:
        s = _Session()
        cgroups = slot.cgroups
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # The longest this sandbox may legitimately live (start-up waits included): its init
        # ends itself then, should the grader and the worker both be gone.
        lifetime = (2 * START_SECONDS + WALL_FACTOR * self.limits.notebook_seconds + GRACE_SECONDS
                    + len(requests) * (WALL_FACTOR * self.limits.probe_seconds + GRACE_SECONDS))
        spawn = {"cmd": "spawn", "workdir": str(workdir), "cgroups": [str(p) for p in cgroups],
                 "limits": self.limits.__dict__, "confine": self.confine,
                 "lifetime": math.ceil(lifetime), "disable": self._disable, **slot.identity}
        holder = int(self._control_call(spawn, [theirs.fileno()])["pid"])
        theirs.close()
        init_pidfd: int | None = None
        cell_deadline = float("inf")
        # The child's own (soft) notebook limit should fire first; this one is for when it can't.
        notebook_deadline = (time.monotonic() + WALL_FACTOR * self.limits.notebook_seconds
                             + GRACE_SECONDS)
        hard = WALL_FACTOR * self.limits.cell_seconds + GRACE_SECONDS
        try:
            msg = self._recv(ours, time.monotonic() + START_SECONDS)
            if msg is None or msg.get("type") != "spawned":
                s.fatal = "the sandbox failed to start"
                return s
            init_pidfd = _pidfd(int(msg["init_pid"]))
            if init_pidfd is not None:
                with self._live_lock:
                    self._live[holder] = init_pidfd
            if self._cancelled.is_set():
                s.fatal = "the run was interrupted"
                return s
            msg = self._recv(ours, time.monotonic() + START_SECONDS)
            if msg is None or msg.get("type") != "hello":
                s.fatal = "the sandbox failed to start"
                return s
            s.protections = {str(k): str(v) for k, v in dict(msg["protections"]).items()}
            # Decided here, before the runner is told to run anything: refused, the sandbox
            # has run none of the submission's code.
            reason = sandbox.unconfined_reason(s.protections) if self.confine else ""
            if reason and not self.allow_unprotected:
                raise SandboxError(f"refusing to run student code unprotected: {reason}; "
                                   "pass --allow-unprotected to grade anyway")
            numbers = [code_cell_number(cells, i) for i in range(len(cells))]
            wire.send(ours, {"type": "run", "cells": [c or "" for c in cells],
                             "skip": sorted(skip), "numbers": numbers})
            current: int | None = None
            # The runner announces each cell it runs, in order, exactly once, then reports it.
            # Anything else is a forgery from the student's code (a "heartbeat" to restart a
            # cell's deadline, a result for a cell that is still running or another cell's):
            # the grader sets each deadline once, and never lets the child move it.
            order = iter([i for i in range(len(cells)) if i not in skip])
            while True:
                msg = self._recv(ours, min(notebook_deadline, cell_deadline))
                if msg is None:
                    if current is None:
                        s.fatal = "the submission's process died before running any cell"
                    else:
                        s.killed_cell, s.reason = current, "the process died while running this cell"
                    return s
                if msg["type"] == "cell_start":
                    index = _int(msg.get("index"), len(cells))
                    if current is not None or index != next(order, None):
                        raise wire.WireError(f"cell {index + 1} announced out of order")
                    current = index
                    cell_deadline = time.monotonic() + hard
                elif msg["type"] == "cell":
                    index = _int(msg.get("index"), len(cells))
                    if index != current:
                        raise wire.WireError(f"a result for cell {index + 1}, which is not "
                                             "the cell running")
                    s.cells[index] = CellOutcome(
                        index, _status(msg.get("status")), float(msg.get("seconds") or 0.0),
                        _error(msg.get("error")), str(msg.get("stdout") or "")[:200_000],
                        s.keep_figures(msg.get("figures")))
                    current = None
                    cell_deadline = float("inf")
                elif msg["type"] == "ready":
                    if current is not None or next(order, None) is not None:
                        raise wire.WireError("'ready' before every cell ran")
                    s.notes = tuple(str(n)[:300] for n in (msg.get("notes") or [])[:50])
                    break
                else:
                    raise wire.WireError(f"unexpected message {msg['type']!r}")
            nonce = secrets.token_hex(16)
            wire.send(ours, {"type": "probes", "nonce": nonce, "source": probes_source,
                             "requests": [{"id": k, "probe": p, "args": {a: wire.encode_value(v) for a, v in args.items()}}
                                          for k, (p, args) in requests.items()]})
            hard = WALL_FACTOR * self.limits.probe_seconds + GRACE_SECONDS
            for key in requests:
                msg = self._recv(ours, time.monotonic() + hard)
                if msg is None:
                    s.killed_probe, s.reason = key, "the process died while this check was running"
                    return s
                if msg.get("type") != "probe" or msg.get("nonce") != nonce or msg.get("id") != key:
                    raise wire.WireError("an answer did not match the question asked")
                if msg.get("ok") is True:
                    s.answers[key] = ProbeAnswer(True, wire.decode_value(msg.get("value")))
                else:
                    s.answers[key] = ProbeAnswer(False, error=_error(msg.get("error")))
            return s
        except TimeoutError:
            if current is not None and time.monotonic() < notebook_deadline:
                s.killed_cell = current
                s.reason = (f"still running {hard:.0f} s after the cell started (limit "
                            f"{self.limits.cell_seconds:g} s of CPU time); killed")
            elif current is not None:
                s.killed_cell = current
                s.reason = f"the notebook exceeded its {self.limits.notebook_seconds:g} s limit in this cell; killed"
            else:
                pending = [k for k in requests if k not in s.answers]
                if pending and s.cells:
                    s.killed_probe = pending[0]
                    s.reason = f"the check did not finish within {hard:.0f} s; killed"
                else:
                    s.fatal = "the submission stopped responding; killed"
            return s
        except (wire.WireError, ValueError, KeyError, TypeError, AttributeError,
                OverflowError, RecursionError, MemoryError) as exc:
            # Whatever the child sent, this student is "could not grade", never the batch.
            s.fatal = f"the submission corrupted the grader's channel ({str(exc)[:300]}); killed"
            return s
        finally:
            ours.close()
            with self._live_lock:
                self._live.pop(holder, None)
            self._kill(init_pidfd, holder, cgroups)

    def _recv(self, sock: socket.socket, deadline: float) -> dict[str, Any] | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining if remaining != float("inf") else None)
        try:
            return wire.recv(sock)
        except socket.timeout:
            raise TimeoutError from None
        except ConnectionResetError:
            return None

    def _kill(self, pidfd: int | None, holder: int, cgroups: list[Path]) -> None:
        """Kill the sandbox's init (and with it its pid namespace), then reap the holder."""
        if pidfd is not None:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(pidfd)
        try:
            reaped = self._control_call({"cmd": "reap", "pid": holder})
            self.peak_child_rss_kb = max(self.peak_child_rss_kb, int(reaped.get("maxrss_kb", 0)))
        finally:
            # Without a pid namespace, strays are found through the slot's cgroup instead;
            # and a lost worker's sandboxes too.
            sandbox.kill_cgroup_members(cgroups, seconds=2.0)


class _Lost(WorkerLost):
    """The warm worker of ``generation`` is gone: ``Worker.run`` replaces it and runs again."""

    def __init__(self, generation: int, pid: int, why: str) -> None:
        super().__init__(f"the grading worker (pid {pid}) {why}")
        self.generation = generation
        self.why = why


def _secret_paths(folders: Sequence[Path], chars: int = 24_000) -> list[str]:
    """The folders and the first files in them (``chars`` of paths at most: a spawn request
    is one 64 KiB control message). A folder others may not list can still hold a file they
    may open by its name (``expected.json``): the folders come first, then their contents."""
    paths = [str(folder) for folder in folders]
    used = sum(len(p) for p in paths)
    for folder in folders:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for dirpath, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in dirs + files:
                path = os.path.join(dirpath, name)
                if used + len(path) > chars:
                    return paths
                paths.append(path)
                used += len(path)
    return paths


def _code_paths() -> list[str]:
    """The grader's installed code and its environment: the sandbox uid may read, never write."""
    import sysconfig

    import grader

    package = Path(grader.__file__).resolve().parent
    return [str(package), str(package / "__init__.py"), str(package / "sandbox" / "worker.py"),
            sys.prefix, sysconfig.get_paths()["purelib"]]


def _copy_font_lists(source: Path | None, dest: Path | None) -> None:
    """Copy matplotlib's ``fontlist-*.json`` from ``source`` to ``dest`` where ``dest`` has
    none of that name; best effort (a missing or unwritable folder costs time, not a run)."""
    if source is None or dest is None:
        return
    try:
        for path in source.glob("fontlist-*.json"):
            target = dest / path.name
            if not target.exists():
                atomic_write(target, read_capped(path, 16 * 2**20, what="font list"))
    except (OSError, InputError):
        pass


class _Forked:
    """A worker forked by the warm listener (``sandbox.warm``): not this process's child, so
    it is killed and awaited through a pidfd, never by its pid (which could be reused)."""

    stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd = _pidfd(pid) if pid > 0 else None  # -1: none to watch

    def kill(self) -> None:
        if self._fd is not None:
            try:
                signal.pidfd_send_signal(self._fd, signal.SIGKILL)
            except OSError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        if self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                raise subprocess.TimeoutExpired(f"warm worker {self.pid}", timeout or 0)
            os.close(self._fd)
            self._fd = None
        return 0


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _int(value: Any, bound: int) -> int:
    if not isinstance(value, int) or not 0 <= value < bound:
        raise wire.WireError("cell index out of range")
    return value


def _status(value: Any) -> str:
    if value not in ("ok", "error", "timeout"):
        raise wire.WireError("unknown cell status")
    return str(value)


def _error(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise wire.WireError("malformed error")
    return {str(k): str(v)[:4000] for k, v in value.items()}
