"""Execute submissions on a Dask cluster: the second implementation of ``Executor``.

Only execution leaves the instructor's process. A task carries one staged submission's files
(bytes, capped as ``submission.stage`` caps them), the assignment's probes source and the probe
requests; it returns the ``Execution`` as wire JSON (``grader.wire``: arrays as base64 of an
allow-listed dtype), a plain string, so nothing unpickled on this side was built from a
student's data. Expected values, hidden checks' expectations, the reference and held-out labels
stay here, and so do comparing, grading and writing logs.

On each Dask worker, ``SandboxPlugin`` keeps one warm ``grader.sandbox.local.Worker`` (the same
sandbox as a local run), started when the plugin is registered and reused by every task. A
worker reports its sandbox's protections; one with a protection off (or running other grader
code) advertises no capacity, so no task goes there, unless ``allow_unconfined``.

Capacity is declared as Dask resources: a task needs ``grader_cpu`` (the assignment's
threads) and ``grader_memory_mb`` (its memory limit); a worker offers what it was started with
(``dask worker --resources "grader_cpu=32,grader_memory_mb=120000"``) or else its thread count
and its memory limit. The scheduler then never puts more sandboxes on a worker than it has
cores and memory for.

Importing this module imports Dask; nothing imports it unless a scheduler is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import stat
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Sequence

from grader import wire
from grader.errors import SandboxError
from grader.files import private_tmpdir
from grader.execution import (Execution, Limits, Requests, execution_from_wire,
                              execution_to_wire, protections_off, requests_from_wire,
                              requests_to_wire)
from grader.sandbox import confine
from grader.sandbox.local import Worker
from grader.submission import MAX_STAGED_BYTES

try:
    import distributed
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover - depends on the installed extras
    raise SandboxError("grading on a Dask cluster needs Dask: pip install -e '.[cluster]'") from None

CPU = "grader_cpu"
MEMORY = "grader_memory_mb"
MAX_FILES_BYTES = MAX_STAGED_BYTES  # a task carries no more than staging keeps
# A Dask worker that died mid-task has its tasks rescheduled by the scheduler itself (up to
# distributed.scheduler.allowed-failures); these retries are for a task that *raised*, e.g.
# because the worker's warm grading process died and was restarted.
RETRIES = 2


class SchedulerUnreachable(SandboxError):
    """No Dask scheduler answered at the address given (exit 5, before anything is graded)."""


# -- the staged files ----------------------------------------------------------------------------

def read_files(workdir: Path) -> dict[str, bytes]:
    """A staged folder's regular files by relative POSIX path, capped like ``submission.stage``."""
    files: dict[str, bytes] = {}
    total = 0
    for root, dirs, found in os.walk(workdir, followlinks=False):
        dirs.sort()
        for name in sorted(found):
            path = Path(root) / name
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            data = path.read_bytes()
            total += len(data)
            if total > MAX_FILES_BYTES:
                raise SandboxError(f"{workdir}: staged files exceed {MAX_FILES_BYTES} bytes")
            files[path.relative_to(workdir).as_posix()] = data
    return files


def write_files(files: dict[str, bytes], dest: Path) -> None:
    total = 0
    for rel, data in files.items():
        parts = Path(rel).parts
        if not parts or Path(rel).is_absolute() or ".." in parts:
            raise SandboxError(f"refusing a staged file outside the submission: {rel!r}")
        total += len(data)
        if total > MAX_FILES_BYTES:
            raise SandboxError(f"staged files exceed {MAX_FILES_BYTES} bytes")
        target = dest.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


# -- the Dask worker's side ----------------------------------------------------------------------

class SandboxPlugin(WorkerPlugin):
    """One warm grading worker per Dask worker, for every task of one run's limits."""

    def __init__(self, *, name: str, limits: dict[str, Any], allow_unconfined: bool,
                 code: str, preload: Sequence[str] = (),
                 warmup: Sequence[tuple[str, str]] = ()) -> None:
        """``warmup``: the assignment's warm-up scripts as (the client's path, source): the
        files are on the client's machine, not this one."""
        self.name = name
        self.limits = limits
        self.preload = tuple(preload)
        self.warmup = tuple(warmup)
        self.warmup_dir: Path | None = None
        self.allow_unconfined = allow_unconfined
        self.code = code  # the client's grader.logfile.code_fingerprint()
        self.worker: Worker | None = None
        self.slots = 1
        self.protections: dict[str, str] = {}
        self.refused = ""
        self.lock: threading.Lock | None = None  # made on the worker: a lock does not pickle

    async def setup(self, worker: Any) -> None:
        from grader import logfile

        self.slots = max(1, int(worker.state.nthreads))
        self.lock = threading.Lock()
        if logfile.code_fingerprint() != self.code:
            self.refused = "its grader code differs from this one's (install the same version)"
        else:
            try:
                # Seconds of imports: off the event loop, so the worker keeps its heartbeats.
                self.protections = await asyncio.to_thread(self._start)
            except Exception as exc:  # reported to the client, which then leaves this worker out
                self.refused = f"its grading worker failed to start ({exc})"
            off = protections_off(self.protections)
            if confine.UID_KEY in off and not confine.unconfined_reason(self.protections):
                # Root that cannot drop (the grader behind a folder only root passes) but is
                # nested in its own namespaces under Landlock: the local rule accepts it too.
                off.remove(confine.UID_KEY)
            if off and not self.allow_unconfined:
                self.refused = "sandbox protection off: " + ", ".join(off)
        total = worker.state.total_resources
        if self.refused:
            # Only resources it was started with can lead a task here: take them away.
            if CPU in total or MEMORY in total:
                await worker.set_resources(**{CPU: 0, MEMORY: 0})
            return
        memory = worker.memory_manager.memory_limit or _host_memory_bytes()
        wanted = {CPU: total.get(CPU, self.slots), MEMORY: total.get(MEMORY, memory // 2**20)}
        if any(total.get(k) != v for k, v in wanted.items()):
            await worker.set_resources(**wanted)

    def _start(self) -> dict[str, str]:
        sweep_orphan_cgroups()
        scripts = self._warmup_files()
        try:
            # The plugin's own rule is stricter (any protection off refuses the worker unless
            # allow_unconfined), and it needs the self-test's report to apply it.
            self.worker = Worker(limits=Limits(**self.limits), slots=self.slots,
                                 preload=self.preload, warmup=scripts, allow_unprotected=True)
        except SandboxError as exc:
            message = str(exc)  # named as the instructor knows them, not by this copy
            for (client_path, _), local in zip(self.warmup, scripts):
                message = message.replace(str(local.resolve()), client_path)
            raise SandboxError(message) from None
        # One empty notebook shows the whole report (namespaces, Landlock, ...), not just cgroups.
        empty = private_tmpdir("selftest")
        try:
            return dict(self.worker.run(workdir=empty, cells=[], probes_source="",
                                        requests={}).protections)
        finally:
            shutil.rmtree(empty, ignore_errors=True)

    def _warmup_files(self) -> list[Path]:
        """The warm-up scripts as files of this machine, written once (restarts reuse them)."""
        if self.warmup and self.warmup_dir is None:
            self.warmup_dir = private_tmpdir("warmup")
            for k, (client_path, source) in enumerate(self.warmup):
                target = self.warmup_dir / str(k) / Path(client_path).name
                target.parent.mkdir()
                target.write_text(source, encoding="utf-8")
        if self.warmup_dir is None:
            return []
        return [self.warmup_dir / str(k) / Path(client_path).name
                for k, (client_path, _) in enumerate(self.warmup)]

    def teardown(self, worker: Any) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None
        if self.warmup_dir is not None:
            shutil.rmtree(self.warmup_dir, ignore_errors=True)
            self.warmup_dir = None

    def restart(self, failed: Worker) -> None:
        """After the warm process ``failed``: a fresh one for the next task (and the retry).

        Tasks that failed with the same process all call this; only the first replaces it."""
        assert self.lock is not None, "restart() before setup()"
        with self.lock:
            if self.worker is not failed:
                return
            self.worker = None
            failed.close()
            self._start()

    def status(self) -> dict[str, Any]:
        return {"protections": self.protections, "refused": self.refused, "slots": self.slots}


def sweep_orphan_cgroups() -> list[Path]:
    """``confine.sweep_orphan_cgroups`` (every warm worker's start runs it too)."""
    return confine.sweep_orphan_cgroups()


def _host_memory_bytes() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _plugin_status(name: str, dask_worker: Any) -> dict[str, Any]:
    plugin = dask_worker.plugins.get(name)
    if not isinstance(plugin, SandboxPlugin):
        return {"protections": {}, "refused": "the grader's plugin is not set up", "slots": 0,
                "resources": {}}
    return {**plugin.status(), "resources": dict(dask_worker.state.total_resources)}


def _cancel_remote(name: str, dask_worker: Any) -> None:
    plugin = dask_worker.plugins.get(name)
    if isinstance(plugin, SandboxPlugin) and plugin.worker is not None:
        plugin.worker.cancel()


def remote_run(plugin_name: str, files: dict[str, bytes], cells: list[str | None],
               probes_source: str, requests: str) -> str:
    """One task: the submission in a private folder, through this Dask worker's warm worker."""
    plugin = distributed.get_worker().plugins.get(plugin_name)
    worker = plugin.worker if isinstance(plugin, SandboxPlugin) else None
    if not isinstance(plugin, SandboxPlugin) or worker is None:
        raise SandboxError("this Dask worker has no grading sandbox for this run")
    if plugin.refused:
        raise SandboxError(f"this Dask worker may not grade: {plugin.refused}")
    workdir = private_tmpdir("sub")
    try:
        write_files(files, workdir)
        try:
            execution = worker.run(workdir=workdir, cells=cells, probes_source=probes_source,
                                   requests=requests_from_wire(requests))
        except (SandboxError, OSError):  # a dead warm worker shows as either (broken pipe)
            plugin.restart(worker)
            raise
        return json.dumps({"execution": execution_to_wire(execution),
                           "rss_kb": worker.rss_kb(),
                           "peak_child_rss_kb": worker.peak_child_rss_kb})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- the instructor's side -------------------------------------------------------------------------

class ClusterExecutor:
    """``Executor`` over a Dask scheduler: ``run`` sends one task and waits for its Execution.

    Thread-safe; ``slots`` is how many sandboxes the usable workers offer, so the batch keeps
    that many submissions in flight. Use as a context manager.
    """

    def __init__(self, *, scheduler: str, limits: Limits, allow_unconfined: bool = False,
                 connect_seconds: float = 10.0, wait_seconds: float = 60.0,
                 warn: Callable[[str], None] | None = None, preload: Sequence[str] = (),
                 warmup: Sequence[Path] = ()) -> None:
        """``warn(line)`` is told about each worker that will not be used, and why.

        ``preload`` and ``warmup`` as for ``Worker``: each Dask worker's warm process does them.
        """
        from grader import logfile

        scripts: list[tuple[str, str]] = []
        for path in warmup:  # read here: the Dask workers have no copy of the course
            try:
                scripts.append((str(path), path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise SandboxError(f"warm-up script {path}: cannot read it ({exc})") from None

        self.scheduler = scheduler
        self.limits = limits
        self.cgroup_report: dict[str, str] = {}
        self.peak_child_rss_kb = 0
        self._rss_kb = 0
        self._lock = threading.Lock()
        self._inflight: set[Any] = set()
        self.plugin_name = ""
        self.client: Any = None
        self.threads = max(1, limits.threads)
        self.resources = {CPU: self.threads, MEMORY: limits.memory_mb}
        try:
            # Checked first: a Client that fails on a malformed address hangs in its __del__.
            scheme, location = parse_address(scheduler)
            get_backend(scheme)
            if scheme in ("tcp", "tls"):
                parse_host_port(location)
        except ValueError as exc:
            raise SchedulerUnreachable(f"{scheduler}: not a Dask scheduler address ({exc}); "
                                       "nothing was graded") from None
        try:
            self.client = distributed.Client(  # type: ignore[no-untyped-call]
                scheduler, timeout=connect_seconds, set_as_default=False)
        except Exception as exc:  # Dask raises OSError, TimeoutError, TypeError (TLS set-up), ...
            raise SchedulerUnreachable(
                f"cannot reach the Dask scheduler at {scheduler} ({exc}); nothing was graded") from None
        try:
            if not self.client.nthreads():
                try:
                    self.client.wait_for_workers(1, timeout=wait_seconds)
                except (TimeoutError, OSError):
                    raise SandboxError(f"no Dask worker joined the scheduler at {scheduler} "
                                       f"within {wait_seconds:g} s") from None
            settings = dataclasses.asdict(limits)
            self.plugin_name = "grader-sandbox-" + uuid.uuid4().hex[:12]
            # A fresh name per run: a worker may serve several runs, each with its own limits.
            self.client.register_plugin(SandboxPlugin(
                name=self.plugin_name, limits=settings, allow_unconfined=allow_unconfined,
                code=logfile.code_fingerprint(), preload=preload, warmup=scripts),
                name=self.plugin_name)
            self.workers = self.client.run(_plugin_status, self.plugin_name)
            self.slots = 0
            for address, st in sorted(self.workers.items()):
                if st["refused"]:
                    if warn is not None:
                        warn(f"Dask worker {address} not used: {st['refused']}"
                             + ("" if allow_unconfined or "protection" not in st["refused"]
                                else " (--allow-unconfined to use it anyway)"))
                    continue
                res = st["resources"]
                fits = min(int(res.get(CPU, 0) // self.threads),
                           int(res.get(MEMORY, 0) // max(1, limits.memory_mb)))
                if fits == 0 and warn is not None:
                    warn(f"Dask worker {address} not used: it offers {res.get(CPU, 0):g} "
                         f"{CPU} and {res.get(MEMORY, 0):g} {MEMORY}, a sandbox needs "
                         f"{self.threads} and {limits.memory_mb}")
                self.slots += min(fits, int(st["slots"]))
                self.cgroup_report = self.cgroup_report or dict(st["protections"])
            if self.slots == 0:
                raise SandboxError(f"no Dask worker at {scheduler} can run a sandbox "
                                   f"({len(self.workers)} worker(s), none usable; see above)")
            # No more tasks in flight than sandboxes: the scheduler assigns a task with resource
            # restrictions to a worker at once, so one more would wait behind a busy worker
            # while another sat idle (measured: 0.4 s idle per task on 2 workers, 0.01 on 1).
            self._free = threading.BoundedSemaphore(self.slots)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ClusterExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, *, workdir: Path, cells: list[str | None], probes_source: str,
            requests: Requests) -> Execution:
        files = read_files(workdir)
        with self._free:
            future = self.client.submit(
                remote_run, self.plugin_name, files, list(cells), probes_source,
                requests_to_wire(requests), key=f"grader-run-{uuid.uuid4().hex}",
                resources=self.resources, retries=RETRIES, pure=False)
            with self._lock:
                self._inflight.add(future)
            try:
                reply = future.result()
            finally:
                with self._lock:
                    self._inflight.discard(future)
                future.release()
        if not isinstance(reply, str):
            raise wire.WireError("a Dask worker sent something other than wire JSON")
        envelope = json.loads(reply)
        with self._lock:
            self._rss_kb = max(self._rss_kb, int(envelope.get("rss_kb", 0)))
            self.peak_child_rss_kb = max(self.peak_child_rss_kb,
                                         int(envelope.get("peak_child_rss_kb", 0)))
        return execution_from_wire(str(envelope["execution"]))

    def rss_kb(self) -> int:
        """The largest warm worker's resident memory seen on any Dask worker."""
        return self._rss_kb

    def cancel(self) -> None:
        """Kill this run's sandboxes on every Dask worker and drop its tasks (an interrupt)."""
        with self._lock:
            futures = list(self._inflight)
        try:
            # A running task cannot be stopped from outside its thread: its sandbox can.
            self.client.run(_cancel_remote, self.plugin_name, wait=True)
        except Exception:  # best effort: the interrupt goes on whatever the cluster says
            pass
        try:
            self.client.cancel(futures)
        except Exception:
            pass

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if self.plugin_name:
                # Tears down every worker's warm process and its cgroups.
                client.unregister_worker_plugin(self.plugin_name)
        except Exception:  # the scheduler may be gone already; closing must not mask why
            pass
        finally:
            client.close()
