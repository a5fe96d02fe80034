"""Grading on a Dask cluster: throughput with 1 and 2 worker processes, and what a task costs.

Grades the last-name reference notebook (training included) as N students: locally (one
sandbox), on a LocalCluster of 1 Dask worker process, on one of 2, each worker with one thread
(so one sandbox), and locally with -j 2. Prints the throughput of each, the 2-worker / 1-worker
ratio beside the local -j 2 / -j 1 one (what the cores allow), and the per-task overhead of the
cluster against a local run. Overhead is the time a sandbox slot was
not executing a submission, per submission: (wall x slots - total execution time) / N. It
covers staging, sending the files, scheduling, returning the result and waiting, and unlike
the wall time per submission it does not move with how fast this (shared) machine ran a
notebook.

    .venv/bin/python bench/cluster_scaling.py [--n 6] [--data DIR] [--part training|waiting]

A second part separates the machinery from CPU contention on a shared machine: the rnn_and_grad
reference with a cell that sleeps 4 s (a wait, not work) as 2N students, on 1 and on 2 workers.
Its ratio shows what the scheduler, the tasks and the grader's threads allow, whatever else is
running on the cores.

Needs the cluster extra (pip install -e '.[cluster]') and the names data (--data DIR,
$GRADER_NAMES_DATA, or the assignment's shipped copy). The expected values are computed once
(in a cache folder of the bench's own, $GRADER_CACHE_DIR) and shared by every run, and the
local worker's start is waited for before the clock starts, so only grading is timed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import spec  # noqa: E402
from grader.submission import student_dirs  # noqa: E402
from grader.grading.run import GradingSession  # noqa: E402


def grade(*, subs: Path, out: Path, data: Path | None, scheduler: str | None,
          assignment: str = "rnn_last_name", jobs: int = 1) -> tuple[float, list[dict[str, Any]]]:
    a = spec.find(ROOT, assignment)
    with GradingSession(root=ROOT, assignment=a, out_dir=out, data_dir=data, jobs=jobs,
                        scheduler=scheduler) as session:
        session.wait_for_worker()  # it starts in the background; time grading alone
        t0 = time.perf_counter()
        results = session.grade(student_dirs(subs), jobs=jobs)
        return time.perf_counter() - t0, [r.log.as_dict() for r in results]


def on_cluster(n_workers: int, **kw: Any) -> tuple[float, list[dict[str, Any]]]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as lc:
        return grade(scheduler=lc.scheduler_address, **kw)


def describe(name: str, n: int, slots: int, wall: float,
             logs: list[dict[str, Any]]) -> dict[str, float]:
    execute = [log["timings"]["execute_seconds"] for log in logs]
    figures = {"wall": wall, "per_sub": wall / n, "rate": 3600 * n / wall,
               "execute": statistics.median(execute),
               "overhead": (wall * slots - sum(execute)) / n}
    print(f"{name:<20} {wall:7.1f} s for {n}: {figures['rate']:6.1f} submissions/hour; "
          f"median {figures['execute']:.1f} s in the sandbox, "
          f"{figures['overhead']:.2f} s per submission outside it")
    return figures


def waiting(base: Path, n: int, seconds: float) -> None:
    import nbformat

    nb = nbformat.read(str(ROOT / "reference" / "rnn_and_grad.ipynb"), as_version=4)  # type: ignore[no-untyped-call]
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import time\ntime.sleep({seconds})"))  # type: ignore[no-untyped-call]
    subs = base / "waiting"
    for k in range(n):
        (subs / f"student{k:03d}").mkdir(parents=True)
        nbformat.write(nb, str(subs / f"student{k:03d}" / "rnn_and_grad.ipynb"))  # type: ignore[no-untyped-call]
    kw: dict[str, Any] = {"subs": subs, "data": None, "assignment": "rnn_and_grad"}
    print(f"rnn_and_grad reference with a {seconds:g} s sleep x {n} (waiting, not computing):")
    wall, one = on_cluster(1, out=base / "w-one", **kw)
    rate_one = describe("cluster, 1 worker", n, 1, wall, one)["rate"]
    wall, two = on_cluster(2, out=base / "w-two", **kw)
    rate_two = describe("cluster, 2 workers", n, 2, wall, two)["rate"]
    print(f"throughput, 2 workers / 1 worker:  {rate_two / rate_one:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=6, help="students (copies of the reference)")
    parser.add_argument("--data", type=Path, default=None, help="names data folder")
    parser.add_argument("--part", choices=["all", "training", "waiting"], default="all")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="grader-cluster-bench-"))
    os.environ["GRADER_CACHE_DIR"] = str(base / "cache")  # Dask's local workers inherit it
    try:
        if args.part != "training":
            waiting(base, 2 * args.n, 4.0)
        if args.part == "waiting":
            return
        subs = base / "submissions"
        for k in range(args.n):
            (subs / f"student{k:03d}").mkdir(parents=True)
            shutil.copy(ROOT / "reference" / "rnn_last_name.ipynb", subs / f"student{k:03d}")
        kw: dict[str, Any] = {"subs": subs, "data": args.data}
        print(f"last-name reference x {args.n}, {os.cpu_count()} cores, "
              "one sandbox per Dask worker (1 thread each)")
        runs = {}
        wall, local = grade(out=base / "local", scheduler=None, **kw)
        runs["local"] = describe("local (-j 1)", args.n, 1, wall, local)
        wall, one = on_cluster(1, out=base / "one", **kw)
        runs["one"] = describe("cluster, 1 worker", args.n, 1, wall, one)
        wall, two = on_cluster(2, out=base / "two", **kw)
        runs["two"] = describe("cluster, 2 workers", args.n, 2, wall, two)
        # The same two sandboxes at once without Dask: what this machine's cores allow.
        wall, local2 = grade(out=base / "local2", scheduler=None, jobs=2, **kw)
        runs["local2"] = describe("local (-j 2)", args.n, 2, wall, local2)
        scores = {tuple(sorted((log["student"], log["score"]) for log in logs))
                  for logs in (local, one, two, local2)}
        print(f"throughput, 2 workers / 1 worker:  {runs['two']['rate'] / runs['one']['rate']:.2f}x "
              f"(local -j 2 / -j 1: {runs['local2']['rate'] / runs['local']['rate']:.2f}x)")
        print(f"per-task overhead against local:   "
              f"{runs['one']['overhead'] - runs['local']['overhead']:+.2f} s (1 worker), "
              f"{runs['two']['overhead'] - runs['local']['overhead']:+.2f} s (2 workers)")
        print(f"same scores all four ways:         {'yes' if len(scores) == 1 else 'NO'} "
              f"({local[0]['score']}/{local[0]['max_score']} for the first)")
        if len(scores) != 1:
            for name, logs in (("local", local), ("1 worker", one), ("2 workers", two),
                               ("local -j 2", local2)):
                print(f"  {name}: {sorted((log['student'], log['score']) for log in logs)}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
