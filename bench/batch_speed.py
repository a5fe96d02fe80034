"""Grade a class in seconds: the warm sandboxed worker against one fresh Jupyter kernel per notebook.

Generates N submissions of the RNN homework (a mix of correct, buggy, stub, raising and
crashing notebooks; every one keeps its plots and self-test cells), grades them with the
batch path (`grader run`, -j JOBS), then with the slow path (nbclient, a fresh kernel per
notebook), and prints:

- wall time per submission of the batch (whole run, worker start-up and reference included),
- the median per-submission time of the slow path run sequentially, and the throughput ratio,
- whether every submission got identical scores (per check) both ways,
- peak memory of the worker and of a submission's process.

    .venv/bin/python bench/batch_speed.py                 # N=300, all checked both ways (~15 min)
    .venv/bin/python bench/batch_speed.py --n 60 --slow 12   # a quicker look
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import spec  # noqa: E402
from grader.grading.plan import limits_for, requests_for  # noqa: E402
from grader.submission import read_notebook, stage, student_dirs  # noqa: E402
from grader.grading.score import grade  # noqa: E402
from grader.student.kernel import run_in_kernel  # noqa: E402
from grader.grading.run import GradingSession  # noqa: E402

KINDS = {  # kind: (weight, source notebook, extra cell)
    "correct": (30, "reference", None),
    "correct_alt": (10, "full_marks_alt_layout", None),
    "buggy_1a": (10, "fails_1a_no_recurrence", None),
    "buggy_1b": (10, "fails_1b_wrong_head", None),
    "buggy_1c": (10, "fails_1c_sum_not_mean", None),
    "stub": (15, "untouched_stub", None),
    "raises": (8, "raises_in_1b", None),
    "crashes": (7, "reference", "import os\nos._exit(3)"),
}


def generate(n: int, folder: Path, seed: int = 0) -> dict[str, str]:
    rng = random.Random(seed)
    names = list(KINDS)
    weights = [KINDS[k][0] for k in names]
    kinds = {}
    for i in range(n):
        kind = names[i] if i < len(names) else rng.choices(names, weights)[0]
        _, source, extra = KINDS[kind]
        path = (ROOT / "reference" / "rnn_and_grad.ipynb" if source == "reference"
                else ROOT / "examples" / "submissions" / source / "rnn_and_grad.ipynb")
        nb = nbformat.read(str(path), as_version=4)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"Submission {i:03d} ({kind})"))
        if extra:
            nb.cells.insert(len(nb.cells) // 2, nbformat.v4.new_code_cell(extra))
        student = f"s{i:03d}_{kind}"
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, str(folder / student / "rnn_and_grad.ipynb"))
        kinds[student] = kind
    return kinds


def slow_grade(a: spec.Assignment, expected: dict, student_dir: Path) -> tuple[float, dict[str, float]]:
    nb = read_notebook(student_dir / a.notebook)
    workdir = stage(student_dir)
    try:
        t = time.perf_counter()
        execution = run_in_kernel(workdir=workdir, cells=list(nb.cells), probes_source=a.probes_source,
                                  requests=requests_for(a), limits=limits_for(a))
        elapsed = time.perf_counter() - t
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    checks = grade(assignment=a, execution=execution, expected=expected)
    return elapsed, {c.name: c.score for c in checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="submissions to generate")
    parser.add_argument("--jobs", type=int, default=2, help="batch workers (grader run -j)")
    parser.add_argument("--slow", default="all", help="'all' or how many submissions to grade the slow way")
    parser.add_argument("--timed", type=int, default=16, help="slow-path submissions timed sequentially")
    args = parser.parse_args()

    a = spec.find(ROOT, "rnn_and_grad")
    base = Path(tempfile.mkdtemp(prefix="grader-bench-"))
    submissions, grades = base / "submissions", base / "grades"
    kinds = generate(args.n, submissions)
    dirs = student_dirs(submissions)
    print(f"generated {len(dirs)} submissions: " +
          ", ".join(f"{k} {list(kinds.values()).count(k)}" for k in KINDS))

    # A cache folder of its own: the reference runs, as in a first run (and as before the cache
    # moved out of --out), so the batch's wall time covers start-up, reference and grading.
    os.environ["GRADER_CACHE_DIR"] = str(base / "cache")
    t0 = time.perf_counter()
    with GradingSession(root=ROOT, assignment=a, out_dir=grades, force=True, jobs=args.jobs) as session:
        session.wait_for_worker()  # it started in the background: count its start here
        t1 = time.perf_counter()
        results = session.grade(dirs, jobs=args.jobs)
        expected = session.ctx.expected if session.ctx else {}
        stats = list(session.worker_stats)
    t2 = time.perf_counter()
    fast = {r.log.student: {c.name: c.score for c in r.log.checks} for r in results}
    per_sub = [r.log.timings["execute_seconds"] for r in results]

    slow_dirs = dirs if args.slow == "all" else dirs[:int(args.slow)]
    timed = slow_dirs[:args.timed]
    slow: dict[str, dict[str, float]] = {}
    slow_times = []
    for d in timed:  # sequential, one fresh kernel each: the throughput yardstick
        elapsed, scores = slow_grade(a, expected, d)
        slow_times.append(elapsed)
        slow[d.name] = scores
    rest = [d for d in slow_dirs if d.name not in slow]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # only for the score comparison
        for d, (_, scores) in zip(rest, pool.map(lambda d: slow_grade(a, expected, d), rest)):
            slow[d.name] = scores
    mismatched = [s for s in slow if slow[s] != fast[s]]

    batch_per = (t2 - t0) / len(dirs)
    slow_median = statistics.median(slow_times)
    print(f"batch wall time:             {t2 - t0:.1f} s for {len(dirs)} submissions, -j {args.jobs}"
          f" (start-up and reference run: {t1 - t0:.1f} s)")
    print(f"batch per submission:        {batch_per * 1000:.0f} ms (wall / N; target <= 250 ms)")
    print(f"per-submission time, median: {statistics.median(per_sub) * 1000:.0f} ms in its sandbox"
          f" ({args.jobs} running at once)")
    print(f"slow path (nbclient) median: {slow_median * 1000:.0f} ms per submission, sequential,"
          f" over {len(slow_times)} submissions")
    print(f"throughput ratio:            {slow_median / batch_per:.1f}x (target >= 20x)")
    print(f"scores identical:            {len(slow) - len(mismatched)}/{len(slow)} submissions graded both ways"
          + (f"; MISMATCH: {', '.join(mismatched[:10])}" if mismatched else ""))
    for i, s in enumerate(stats):
        print(f"worker {i}: RSS {s['worker_rss_kb'] / 1024:.0f} MiB; peak submission process RSS "
              f"{s['peak_submission_rss_kb'] / 1024:.0f} MiB (includes pages shared with the worker)")
    shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if mismatched else 0)


if __name__ == "__main__":
    main()
