"""Grade a folder of submissions: plan, expected values, execute in parallel, log, summarise.

``GradingSession`` is what ``grader run`` (and ``grader check``, for one notebook) drives. The
expected values come first (the reference through the very same sandbox and probes, or from
the cache); then each submission runs in a sandbox forked from one warm worker, ``jobs`` at a
time, along ``grading.pipeline``. A submission whose notebook, assignment, reference and grader
are unchanged reuses its log unless ``force`` is set, so running again resumes.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rich.console import Console

from grader import logfile
from grader.errors import SpecError
from grader.execution import Executor, Protections, protections_off
from grader.grading import expected as expected_mod
from grader.grading.pipeline import Cancelled, Graded, RunContext, grade_or_log_failure
from grader.grading.lock import OutputLock
from grader.grading.plan import GradingPlan, limits_for, warm_up_for
from grader.spec import Assignment

if TYPE_CHECKING:  # not at run time: these load libc (sandbox) and Dask (cluster)
    from grader.gradebook.apply import Gradebook
    from grader.sandbox.cluster import ClusterExecutor
    from grader.sandbox.local import Worker


class GradingSession:
    """One assignment graded into one output folder. Holds the expected values (grader side)."""

    def __init__(self, *, root: Path, assignment: Assignment, out_dir: Path,
                 force: bool = False, data_dir: Path | None = None,
                 console: Console | None = None, checks_dir: Path | None = None,
                 jobs: int = 1, scheduler: str | None = None,
                 allow_unconfined: bool = False, threads: int = 1, write: bool = True,
                 gradebook: Gradebook | None = None, allow_unprotected: bool = False,
                 keep_warm: float = 0) -> None:
        """``checks_dir`` (a bundle from ``grader bundle``) replaces ``root/reference``.

        With ``scheduler`` (a Dask address) submissions run on that cluster; the reference, the
        expected values and all grading stay here. ``allow_unconfined`` lets it use workers
        whose sandbox has a protection off. ``write=False`` leaves ``out_dir`` untouched.
        ``allow_unprotected`` grades even where this machine's sandbox would leave student code
        unconfined (``sandbox.confine.unconfined_reason``); otherwise that is a ``SandboxError``.
        ``keep_warm`` (seconds): take this machine's worker from one kept between runs, and
        keep it that long after the last (``sandbox.warm``); ``warm_note`` says what happened.
        """
        self.root = root
        self.assignment = assignment
        self.out_dir = out_dir
        self.force = force
        self.data_dir = data_dir
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.checks_dir = checks_dir
        self.jobs = jobs
        self.scheduler = scheduler
        self.allow_unconfined = allow_unconfined
        self.allow_unprotected = allow_unprotected
        self.keep_warm = keep_warm
        self.warm_note = ""  # what became of keep_warm, once the run is over
        self.write = write
        self.threads = threads
        self.limits = limits_for(assignment, threads=threads)
        self.plan: GradingPlan  # built in __enter__, while the worker starts
        self._cluster: ClusterExecutor | None = None
        self._worker: Worker | None = None
        self.ctx: RunContext | None = None
        self.worker_stats: list[dict[str, int]] = []
        self.stale: list[str] = []  # students whose logs were set aside
        self._lock = OutputLock(out_dir)  # one run per output folder (grading.lock)
        # Deadlines, overrides, leaderboard (grader.gradebook): applied to every log graded.
        self.gradebook = gradebook

    def __enter__(self) -> GradingSession:
        warm_up = warm_up_for([self.assignment])
        if self.scheduler:
            from grader.sandbox.cluster import ClusterExecutor

            # First: an unreachable scheduler stops the run (exit 5) before anything runs or
            # any folder is made (the lock below makes --out).
            self._cluster = ClusterExecutor(
                scheduler=self.scheduler, limits=self.limits,
                allow_unconfined=self.allow_unconfined, **warm_up,
                warn=lambda line: self.console.print(f"WARNING: {line}", style="bold red",
                                                     markup=False, highlight=False))
        try:
            if self.write:  # a second run on this folder stops before it starts a worker
                self._lock.acquire()
            if self._cluster is None:
                # Started now, waited for only when a notebook has to run (Worker.run): its
                # seconds of imports overlap the plan, the expected-values cache, reading and
                # staging the first submissions. A run that reuses every log never waits.
                self._local_worker(wait=False)
            self.plan = GradingPlan.build(self.assignment, data_dir=self.data_dir,
                                          threads=self.threads)
            self._prepare()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _local_worker(self, *, wait: bool = True) -> Worker:
        """This machine's warm worker, started on first use. With a cluster it only runs the
        reference, and only when the expected values are not cached."""
        from grader.sandbox.local import Worker

        if self._worker is None:
            cache = expected_mod.cache_root()
            if os.geteuid() == 0:
                # Student code runs as another uid: the cache of expected values is made
                # private to root from the start (an existing one is checked, not changed).
                cache.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._worker = Worker(limits=self.limits, slots=1 if self._cluster else self.jobs,
                                  wait=wait, font_cache=cache / "matplotlib",
                                  secret_paths=self._secret_paths(cache),
                                  allow_unprotected=self.allow_unprotected,
                                  keep_warm=0 if self._cluster else self.keep_warm,
                                  **warm_up_for([self.assignment]))
        return self._worker

    def _secret_paths(self, cache: Path) -> list[Path]:
        """What student code must never read: the checks (a bundle, or the reference and the
        assignments), the grades folder and the expected-value cache."""
        if self.checks_dir is not None:
            sources = [self.checks_dir]
        else:
            sources = [self.root / "reference", self.root / "assignments"]
        return [*sources, self.out_dir, cache]

    def _prepare(self) -> None:
        a = self.assignment
        if self.checks_dir is not None:
            expected, ref_sha = expected_mod.load(self.checks_dir)
        else:
            reference = self.root / "reference" / a.notebook
            nb = expected_mod.read_reference(reference)
            ref_sha = nb.sha256
            cached = expected_mod.lookup(plan=self.plan, reference=reference, notebook=nb)
            expected = cached if cached is not None else expected_mod.compute(
                plan=self.plan, reference=reference, executor=self._local_worker(), notebook=nb)
        missing = [c.name for c in a.checks if c.kind != "accuracy" and c.request_key not in expected]
        if missing:
            raise SpecError(f"no expected values for check(s) {', '.join(missing)}")
        if self._worker is not None:
            warn_protections(self._worker.cgroup_report, self.console)
        self.ctx = RunContext(plan=self.plan, expected=expected, out_dir=self.out_dir,
                              fingerprint=self.plan.fingerprint(ref_sha), force=self.force,
                              write=self.write)

    def wait_for_worker(self) -> None:
        """Until this machine's worker serves (if it has one); ``SandboxError`` if it can't.
        Grading waits by itself; this is for timing grading apart from the start (bench/)."""
        if self._worker is not None:
            self._worker.wait_ready()

    def __exit__(self, *exc: object) -> None:
        try:
            if self._worker is not None:
                self._worker.close()
                self.warm_note = self._worker.warm_note
            if self._cluster is not None:
                self._cluster.close()
        finally:
            self._lock.release()

    def grade(self, dirs: list[Path], *, jobs: int,
              on_done: Callable[[Graded], None] = lambda r: None,
              present: list[Path] | None = None) -> list[Graded]:
        """Grade ``dirs``; ``present`` (default ``dirs``) are all the class's folders, so a
        regrade of a few (``--only``) sets no other student's log aside."""
        if self.ctx is None:
            raise RuntimeError("use GradingSession as a context manager")
        if self._cluster is not None:  # as many in flight as the cluster has sandboxes
            jobs = self._cluster.slots
        warned: list[bool] = []

        def done(result: Graded) -> None:
            if result.log.protections_off and not warned:
                warned.append(True)
                warn_protections(result.log.protections, self.console)
            on_done(result)

        if self.write:
            self.stale = logfile.set_aside_stale(self.out_dir,
                                                 [d.name for d in (present or dirs)])
        executor: Executor | None = self._cluster or self._worker
        try:
            results = run_parallel(self.ctx, dirs, jobs=jobs, on_done=done, executor=executor,
                                   worker_stats=self.worker_stats)
            return self._apply_gradebook(results, dirs)
        finally:  # interrupted too: the summary describes every log there is
            if self.write:
                logfile.write_summary(self.out_dir, logfile.iter_logs(self.out_dir),
                                      [q.id for q in self.assignment.questions])

    def _apply_gradebook(self, results: list[Graded], dirs: list[Path]) -> list[Graded]:
        """Penalty, overrides and leaderboard on each log, rewritten only where they changed."""
        if self.gradebook is None:
            return results
        folders = {d.name: d for d in dirs}
        out = []
        for r in results:
            log = self.gradebook.apply(r.log, folders[r.log.student])
            if log != r.log and self.write:
                logfile.write_in(self.out_dir, log)
            out.append(Graded(log, reused=r.reused))
        return out


def warn_protections(protections: Protections, console: Console) -> None:
    for name in protections_off(protections):
        state = protections[name]
        console.print(f"[bold red]WARNING: sandbox protection off: {name}[/] ({state[4:].strip()})")


def run_parallel(ctx: RunContext, dirs: list[Path], *, jobs: int,
                 on_done: Callable[[Graded], None], executor: Executor | None,
                 worker_stats: list[dict[str, int]] | None = None) -> list[Graded]:
    """Grade ``dirs``, ``jobs`` at a time, through ``executor`` (owned by the caller).

    One warm worker serves every slot: a fork server needs no more, and one start-up (seconds
    of imports) is all a batch pays. Measured on 2 cores against one worker per job: same speed
    once running, about 3 s sooner to start.
    """
    todo: queue.Queue[Path] = queue.Queue()
    for d in dirs:
        todo.put(d)
    results: list[Graded] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    # Each thread says itself when it is done. ``Thread.is_alive`` cannot be trusted once an
    # interrupt broke into ``join``: Python 3.11's join then marks the thread it waited for as
    # stopped while it still runs (threading.Thread._wait_for_tstate_lock releases the running
    # thread's lock), and the run used to exit with that thread's staged copy still on disk.
    finished: list[threading.Event] = []

    def loop(done_flag: threading.Event) -> None:
        try:
            _loop()
        finally:
            done_flag.set()

    def _loop() -> None:
        try:
            while not failures and not ctx.cancel.is_set():
                try:
                    d = todo.get_nowait()
                except queue.Empty:
                    return
                result = grade_or_log_failure(ctx, d, executor)
                with lock:
                    results.append(result)
                    on_done(result)
        except Cancelled:
            return
        except BaseException as exc:  # surfaced in the caller's thread
            failures.append(exc)

    # One thread more than slots: it stages the next submission and takes the first slot
    # freed, while the thread that ran there compares and writes. Sandboxes at once stay
    # ``jobs`` (Worker.run queues for a slot); the grader's own work leaves no core idle.
    finished.extend(threading.Event() for _ in range(max(1, min(jobs + 1, len(dirs)))))
    threads = [threading.Thread(target=loop, args=(flag,), daemon=True) for flag in finished]
    started: list[threading.Thread] = []
    try:
        for t in threads:
            t.start()
            started.append(t)
        for flag in finished:
            flag.wait()
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): end the sandboxes in flight, let each thread discard
        # its submission and remove its staged copy, then let the interrupt through. Logs
        # already written stay: running again resumes from them. Polled, never a blocking
        # wait: a second interrupt must not leave a thread half done either.
        ctx.cancel.set()
        if executor is not None:
            executor.cancel()
        for t, flag in zip(threads, finished):
            while t in started and not flag.is_set():
                flag.wait(0.05)
        raise
    finally:
        if executor is not None and worker_stats is not None:
            worker_stats.append({"worker_rss_kb": executor.rss_kb(),
                                 "peak_submission_rss_kb": executor.peak_child_rss_kb})
    if failures:
        raise failures[0]
    return results
