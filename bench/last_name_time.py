"""How long grading the last-name reference takes on ONE core, training included.

Pins this process (and so the worker and every sandbox it forks) to a single CPU, grades the
reference notebook as a submission, and prints the figures.

    .venv/bin/python bench/last_name_time.py [--data ../shared/data/names]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import batch, spec  # noqa: E402
from grader.session import GradingSession  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "names")
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    base = Path(tempfile.mkdtemp(prefix="grader-bench-"))
    (base / "submissions" / "reference").mkdir(parents=True)
    shutil.copy(ROOT / "reference" / "rnn_last_name.ipynb", base / "submissions" / "reference")
    a = spec.find(ROOT, "rnn_last_name")
    t0 = time.perf_counter()
    with GradingSession(root=ROOT, assignment=a, out_dir=base / "grades", data_dir=args.data) as s:
        t1 = time.perf_counter()
        (log,) = s.grade(batch.student_dirs(base / "submissions"), jobs=1)
    t2 = time.perf_counter()
    accuracy = next(c["message"] for c in log["checks"] if c["name"] == "2C_heldout_accuracy")
    print(f"cores used:                       1 (affinity {sorted(os.sched_getaffinity(0))})")
    print(f"grading the reference submission: {t2 - t1:.1f} s (target <= 60 s), score {log['score']}/{log['max_score']}")
    print(f"  of which running its cells:     {sum(c['seconds'] for c in log['cells']):.1f} s")
    print(f"expected values (reference run):  {t1 - t0:.1f} s, once per assignment and then cached")
    print(f"{accuracy}")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
