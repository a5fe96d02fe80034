"""How long grading a last-name notebook takes on ONE core, training included.

Pins this process (and so the worker and every sandbox it forks) to a single CPU, grades the
notebook as a submission, and prints the figures. ``--config reference`` grades the reference
as it is (what every grading run pays once for the expected values); ``--config course-default``
grades the reference with the course-default hyper-parameters instead (128 units, 2 layers,
Adam lr 1e-3, batch 256, 20 epochs), the configuration the CPU budgets of
assignments/rnn_last_name/assignment.yaml must fit. Limits are lifted for the run, so the
figures say what the notebook needs, not where a budget stopped it. CPU time is what the
sandbox's limits count: the notebook's own process_time(), printed by an added last cell.

    .venv/bin/python bench/last_name_time.py [--config course-default] [--data DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import spec  # noqa: E402
from grader.submission import student_dirs  # noqa: E402
from grader.publish.template import notebook_text, read_notebook  # noqa: E402
from grader.grading.run import GradingSession  # noqa: E402

NOTEBOOK = "rnn_last_name.ipynb"
COURSE_DEFAULT = {"hidden_size": "128", "num_layers": "2", "dropout": "0.0", "lr": "1e-3",
                  "batch_size": "256"}
CPU_MARK = "notebook CPU seconds:"


def notebook(config: str) -> nbformat.NotebookNode:
    nb = read_notebook(ROOT / "reference" / NOTEBOOK)
    if config == "course-default":
        (cell,) = [c for c in nb.cells if c.cell_type == "code" and "\nepochs = " in c.source]
        lines = [line for line in cell.source.split("\n") if not line.endswith("# SOLUTION")]
        for name, value in COURSE_DEFAULT.items():
            lines = [re.sub(rf"^{name} = .*$", f"{name} = {value}", line) for line in lines]
        cell.source = "\n".join(lines)
    nb.cells.append(new_code_cell(f"import time as _t\nprint({CPU_MARK!r}, _t.process_time())",
                                  id="bench-cpu"))
    return nb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=None,
                        help="names data folder (default: the copy shipped with the assignment)")
    parser.add_argument("--config", choices=["reference", "course-default"], default="reference")
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    base = Path(tempfile.mkdtemp(prefix="grader-bench-"))
    (base / "submissions" / args.config).mkdir(parents=True)
    (base / "submissions" / args.config / NOTEBOOK).write_text(notebook_text(notebook(args.config)))
    a = spec.find(ROOT, "rnn_last_name")
    lifted = dataclasses.replace(a, cell_seconds=1800, notebook_seconds=3600)
    # A cache folder of its own: the reference runs every time, and is timed.
    os.environ["GRADER_CACHE_DIR"] = str(base / "cache")
    t0 = time.perf_counter()
    with GradingSession(root=ROOT, assignment=lifted, out_dir=base / "grades",
                        data_dir=args.data, threads=1) as s:
        t1 = time.perf_counter()
        (graded,) = s.grade(student_dirs(base / "submissions"), jobs=1)
    t2 = time.perf_counter()
    log = graded.log.as_dict()
    accuracy = next(c["message"] for c in log["checks"] if c["name"] == "2C_heldout_accuracy")
    stdout = "".join(c.get("stdout", "") for c in log["cells"])
    cpu = re.search(rf"{re.escape(CPU_MARK)} ([\d.]+)", stdout)
    train = max(log["cells"], key=lambda c: c["seconds"])
    print(f"config:                           {args.config}")
    print(f"cores used:                       1 (affinity {sorted(os.sched_getaffinity(0))})")
    print(f"grading the submission:           {t2 - t1:.1f} s wall, score {log['score']}/{log['max_score']}")
    print(f"  its cells, CPU (what limits count): {cpu.group(1) if cpu else '?'} s")
    print(f"  its cells, wall:                {sum(c['seconds'] for c in log['cells']):.1f} s; "
          f"longest cell {train['seconds']:.1f} s ({train['label']})")
    print(f"expected values (reference run):  {t1 - t0:.1f} s with the worker's start, once per "
          "assignment and then cached")
    print(f"{accuracy}")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
