"""Similarity report for a large class on one core: 600 submissions in under a minute.

Generates N submissions of the RNN homework from the scenario solutions
(``tests/scenarios/make_similarity.py``): each student mixes the written-differently answers
question by question, puts a statement of their own into most blocks, renames some of their
variables and adds a comment or a print, and carries
a 60 KB plot in its outputs as a real notebook does; a few percent copy a classmate (renamed).
A corpus of ``--corpus`` notebooks is added with ``--against``. The process is pinned to one
core (and BLAS to one thread); then ``similarity.compare`` and ``write_outputs`` run end to end,
reading every notebook from disk, and the script prints the wall time of each stage, the CPU
time used (the steadier figure on a shared machine), the number of similar pairs and how many
planted copies were found.

    .venv/bin/python bench/similarity_speed.py                # N=600, 40 corpus notebooks
    .venv/bin/python bench/similarity_speed.py --n 100 --corpus 10
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads: one core means one BLAS thread too

import argparse  # noqa: E402
import base64  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import nbformat  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import spec
from grader.reports import similarity, similarity_page  # noqa: E402
from grader.publish.template import notebook_text, read_notebook, replace_blocks  # noqa: E402
from tests.scenarios import make_similarity as ms  # noqa: E402

STYLES = [ms.CONCAT_LINEAR, ms.CONCAT_TRANSPOSED, ms.SPLIT_WEIGHTS, ms.TWO_LINEARS, ms.EINSUM,
          ms.PARAMETER_DICT, ms.HELPER_FUNCTIONS, ms.ONE_QUESTION_COPIED, {}]
QUESTIONS = {"1.A": ("1.A init", "1.A forward"), "1.B": ("1.B init", "1.B forward"),
             "1.C": ("1.C loss",), "1.D": ("1.D recurrent weight", "1.D scaling")}
RENAMES = ["h", "t", "state", "hidden", "x_t", "n", "steps", "diff", "pre", "batch", "scale"]


def _student_code(rng: random.Random, i: int) -> dict[str, str]:
    code: dict[str, str] = {}
    for keys in QUESTIONS.values():
        style = rng.choice(STYLES)
        for key in keys:
            if key in style:
                code[key] = style[key]
    for key, text in code.items():  # a statement of their own somewhere in most blocks
        lines = text.strip("\n").split("\n")
        spots = [j for j in range(len(lines) + 1)
                 if j == 0 or not lines[j - 1].rstrip().endswith((",", "(", "{", ":"))]
        if len(lines) > 1 and rng.random() < 0.8:
            j = rng.choice(spots)
            indent = re.match(r"\s*", lines[min(j, len(lines) - 1)]).group()  # type: ignore[union-attr]
            lines.insert(j, f"{indent}check_{i} = {rng.randrange(1000)}")
        code[key] = "\n".join(lines)
    for name in rng.sample(RENAMES, 3):  # this student's own names
        code = {k: re.sub(rf"\b{name}\b", f"{name}_{i}", v) for k, v in code.items()}
    if "1.C loss" in code and rng.random() < 0.5:
        code["1.C loss"] = f"# student {i}: mean squared error\nprint('loss', {i})\n" + \
            re.sub(r"^\s*\n", "", code["1.C loss"])
    return code


def _notebook(ref: nbformat.NotebookNode, code: dict[str, str], plot: str) -> str:
    nb = replace_blocks(ref, source_name="reference/rnn_and_grad.ipynb", replacements=code)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            if cell.source.startswith("def train("):
                cell.outputs = [nbformat.v4.new_output(  # type: ignore[no-untyped-call]
                    "display_data", data={"image/png": plot, "text/plain": "<Figure>"})]
    return notebook_text(nb)


def generate(n: int, corpus: int, folder: Path, seed: int = 0) -> set[frozenset[str]]:
    """Write folder/class/<student>/ and folder/web/<k>.ipynb; return the planted copy pairs."""
    rng = random.Random(seed)
    ref = read_notebook(ROOT / "reference" / "rnn_and_grad.ipynb")
    plot = base64.b64encode(rng.randbytes(45_000)).decode()
    codes: dict[str, dict[str, str]] = {}
    copies: set[frozenset[str]] = set()
    for i in range(n):
        name = f"s{i:03d}"
        if i > 10 and rng.random() < 0.04:
            source = rng.choice(sorted(codes))
            fresh = f"_copied{i}"  # the copier renames the source's variables
            codes[name] = {k: re.sub(r"\b(h|t|state|hidden|diff|pre)(_\d+)?\b", rf"\1{fresh}", v)
                           for k, v in codes[source].items()}
            copies.add(frozenset({name, source}))
        else:
            codes[name] = _student_code(rng, i)
        path = folder / "class" / name / "rnn_and_grad.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(_notebook(ref, codes[name], plot))
    (folder / "web").mkdir()
    for k in range(corpus):
        (folder / "web" / f"repo{k:02d}.ipynb").write_text(
            _notebook(ref, _student_code(rng, 10_000 + k), plot))
    return copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--corpus", type=int, default=40)
    args = parser.parse_args()
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[0]})
    a = spec.find(ROOT, "rnn_and_grad")
    with tempfile.TemporaryDirectory(prefix="similarity-bench-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        copies = generate(args.n, args.corpus, folder)
        print(f"generated {args.n} submissions and {args.corpus} corpus notebooks in "
              f"{time.perf_counter() - t0:.1f} s (not timed below)")
        t1, c1 = time.perf_counter(), time.process_time()
        report = similarity.compare(
            assignment=a.name, template=similarity.load_template(ROOT, a.notebook),
            question_ids=[q.id for q in a.questions], titles={q.id: q.title for q in a.questions},
            students=sorted((folder / "class").iterdir()), notebook=a.notebook,
            against=[folder / "web"])
        t2 = time.perf_counter()
        similarity_page.write_outputs(report, out_dir=folder / "out")
        t3, c3 = time.perf_counter(), time.process_time()
        found = {frozenset({p.a.name, p.b.name}) for p in report.pairs}
        html = (folder / "out" / "similarity.html").stat().st_size
    total = t3 - t1
    print(f"one core (cpu {allowed[0]}): {args.n} submissions + {args.corpus} corpus files in "
          f"{total:.1f} s (target < 60 s for 600): compare {t2 - t1:.1f} s, "
          f"write csv + html {t3 - t2:.1f} s ({html // 1024} KiB page); CPU time {c3 - c1:.1f} s "
          "(below the wall time when other processes share the core)")
    print(f"{len(report.pairs)} similar pairs; planted copies found: {len(copies & found)} of "
          f"{len(copies)}")
    print("PASS" if total < 60 * args.n / 600 else "SLOWER THAN TARGET")


if __name__ == "__main__":
    main()
