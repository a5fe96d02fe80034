"""What the sandbox adds per submission: the same notebook, confined and unconfined, side by side.

Runs the reference RNN notebook (cells and probes) N times in a confined worker and N times in
an unconfined one, interleaved, and prints the medians and their difference.

    .venv/bin/python bench/sandbox_overhead.py [N]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import spec  # noqa: E402
from grader.grading.plan import limits_for, requests_for  # noqa: E402
from grader.submission import read_notebook  # noqa: E402
from grader.sandbox.local import Worker  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    a = spec.find(ROOT, "rnn_and_grad")
    nb = read_notebook(ROOT / "reference" / a.notebook)
    requests = requests_for(a)
    limits = limits_for(a)
    times: dict[bool, list[float]] = {True: [], False: []}
    with Worker(limits=limits, confine=True) as confined, Worker(limits=limits, confine=False) as bare:
        for i in range(n + 1):
            for confine, worker in ((True, confined), (False, bare)):
                workdir = Path(tempfile.mkdtemp(prefix="grader-bench-"))
                (workdir / a.notebook).write_bytes((ROOT / "reference" / a.notebook).read_bytes())
                t = time.perf_counter()
                ex = worker.run(workdir=workdir, cells=list(nb.cells), probes_source=a.probes_source,
                                requests=requests)
                elapsed = time.perf_counter() - t
                shutil.rmtree(workdir)
                assert all(x.ok for x in ex.answers.values()), "reference failed a probe"
                if i:  # the first round warms caches
                    times[confine].append(elapsed)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"runs per mode:        {n}")
    print(f"median confined:      {on * 1000:.1f} ms per submission")
    print(f"median unconfined:    {off * 1000:.1f} ms per submission")
    print(f"sandbox adds:         {(on - off) * 1000:.1f} ms per submission ({(on / off - 1) * 100:.0f}%)")


if __name__ == "__main__":
    main()
