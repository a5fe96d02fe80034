"""The similarity report: own code only, normalised, winnowed, rare code weighted, shown in a browser.

The class is ``tests/scenarios/similarity/`` (see ``tests/scenarios/make_similarity.py``): eight
independent solutions, three copies of them, and the untouched stub.
"""

from __future__ import annotations

import copy
import csv
import io
import os
import random
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import nbformat
import pytest

from grader import spec
from grader.reports import similarity, similarity_page
from grader.publish.template import notebook_text, read_notebook, write_text_atomic
from tests.conftest import ROOT, grader_cli
from tests.scenarios.make_similarity import COPIES
from tests.test_feedback import chromium, console_errors, needs_chromium

SCENARIOS = ROOT / "tests" / "scenarios" / "similarity"
NOTEBOOK = "rnn_and_grad.ipynb"
ASSIGNMENT = spec.find(ROOT, "rnn_and_grad")
COPY_PAIRS = {frozenset(pair) for pair in COPIES.items()}


def template() -> nbformat.NotebookNode:
    return similarity.load_template(ROOT, NOTEBOOK)


def compare(students: list[Path], **kwargs: object) -> similarity.Report:
    return similarity.compare(  # type: ignore[arg-type]
        assignment="rnn_and_grad", template=template(),
        question_ids=[q.id for q in ASSIGNMENT.questions],
        titles={q.id: q.title for q in ASSIGNMENT.questions}, students=students,
        notebook=NOTEBOOK, **kwargs)


def the_class() -> list[Path]:
    return sorted(p for p in SCENARIOS.iterdir() if p.is_dir())


def names(p: similarity.Pair) -> frozenset[str]:
    return frozenset({p.a.name, p.b.name})


@pytest.fixture(scope="module")
def every_pair() -> similarity.Report:
    return compare(the_class(), min_score=1e-9)


def test_the_scenario_class_is_what_the_script_writes() -> None:
    assert sorted(p.name for p in the_class()) == sorted([
        "independent_concat_linear", "independent_concat_transposed", "independent_split_weights",
        "independent_two_linears", "independent_helper_functions", "independent_einsum",
        "independent_parameter_dict", "independent_reference_style", "copy_renamed_reordered",
        "copy_one_question", "copy_comments_whitespace", "untouched_stub"])


def test_copies_rank_above_every_independent_pair(every_pair: similarity.Report) -> None:
    ranked = [names(p) for p in every_pair.pairs]
    assert set(ranked[:3]) == COPY_PAIRS
    lowest_copy = min(p.score for p in every_pair.pairs if names(p) in COPY_PAIRS)
    highest_other = max(p.score for p in every_pair.pairs if names(p) not in COPY_PAIRS)
    assert lowest_copy > 2 * highest_other  # a wide margin, not a tie broken by luck
    assert highest_other < similarity.MIN_SCORE < lowest_copy


def test_default_report_holds_exactly_the_copies() -> None:
    report = compare(the_class())
    assert [sorted(names(p)) for p in report.pairs] == [
        ["copy_renamed_reordered", "independent_helper_functions"],
        ["copy_comments_whitespace", "independent_einsum"],
        ["copy_one_question", "independent_split_weights"]]
    by_copy = {p.a.name: p for p in report.pairs}
    # Only 1.A was copied; the renamed copy's shared code sits in 1.A and in its 1.C loss.
    assert by_copy["copy_one_question"].questions == ["1.A"]
    assert by_copy["copy_renamed_reordered"].questions == ["1.A", "1.C"]
    assert by_copy["copy_comments_whitespace"].questions == ["1.A", "1.B", "1.C"]
    # Renamed and reordered: every own line of the helpers and 1.A is found on both sides.
    renamed = by_copy["copy_renamed_reordered"]
    assert renamed.shared_lines == (31, 31)
    assert (renamed.a.own_lines, renamed.b.own_lines) == (33, 33)
    assert report.skipped == ()


def test_independent_pairs_of_short_canonical_answers_are_not_flagged(
        every_pair: similarity.Report) -> None:
    pair = next(p for p in every_pair.pairs
                if names(p) == {"independent_concat_linear", "independent_parameter_dict"})
    # They do share code (1.B's readout, 1.C's F.mse_loss, 1.D's loop), and it is discounted.
    assert {"1.B", "1.C", "1.D"} <= set(pair.by_question)
    shared = pair.a.spans.keys() & pair.b.spans.keys()
    assert len(shared) > similarity.MIN_SCORE > pair.score
    assert not any(names(p) <= {n.name for n in the_class() if n.name.startswith("independent")}
                   for p in compare(the_class()).pairs)


def test_rarity_weights() -> None:
    assert [round(similarity.rarity(h, 12), 3) for h in (1, 2, 3, 4, 7, 12)] == [
        1.0, 1.0, 0.656, 0.41, 0.062, 0.0]
    assert similarity.rarity(20, 600) == pytest.approx(0.885, abs=1e-3)  # a web copy, 20 students
    assert similarity.rarity(5, 2) == 1.0


def test_the_untouched_stub_has_no_code_and_is_in_no_pair(every_pair: similarity.Report) -> None:
    stub = next(d for d in every_pair.documents if d.name == "untouched_stub")
    assert stub.cells == () and stub.spans == {}
    assert not any("untouched_stub" in names(p) for p in every_pair.pairs)


def test_template_code_never_counts_as_shared(tmp_path: Path) -> None:
    """Two students who retype, reflow and paste given code share none of it."""
    nb = template()
    given = [c for c in nb.cells if c.cell_type == "code"]
    for student in ("ann", "ben"):
        mine = copy.deepcopy(nb)
        for cell in mine.cells:
            if cell.cell_type == "code":
                cell.source = (cell.source.replace(", dim=1)", ",dim = 1 )  # reflowed")
                               .replace("def max_error(got, expected):",
                                        "def max_error(got,\n              expected):"))
        pasted = "\n\n".join(c.source for c in given[:2]) + "\n# mine too\n"
        mine.cells.append(nbformat.v4.new_code_cell(pasted))  # type: ignore[no-untyped-call]
        write_text_atomic(tmp_path / student / NOTEBOOK, notebook_text(mine))
    report = compare([tmp_path / "ann", tmp_path / "ben"], min_score=1e-9)
    assert [d.own_lines for d in report.documents] == [0, 0]
    assert report.pairs == ()


def test_no_highlighted_line_is_given_code(every_pair: similarity.Report) -> None:
    for p in every_pair.pairs:
        for doc, marks in ((p.a, p.marks_a), (p.b, p.marks_b)):
            for position, line in marks:
                cell = doc.cells[position]
                assert line in cell.own and line not in cell.given, (doc.name, cell.index, line)


def norm(code: str) -> list[str]:
    toks = similarity.lex(code)
    own = frozenset(t[2] for t in toks)
    bound = similarity.bound_identifiers(code, own, toks)
    return [";" if t[0] == tokenize.NEWLINE else similarity.normalise(t, bound) for t in toks]


def test_normalisation_drops_comments_layout_and_chosen_names() -> None:
    a = norm("h = torch.tanh(x @ self.W)  # step\nself.W = nn.Parameter(torch.eye(3))\n")
    b = norm("hidden=torch.tanh( x@self.weights )\n\n# init\nself.weights = nn.Parameter(\n"
             "    torch.eye(3))")
    assert a == b == ["V", "=", "torch", ".", "tanh", "(", "x", "@", "self", ".", "V", ")", ";",
                      "self", ".", "V", "=", "nn", ".", "Parameter", "(", "torch", ".", "eye",
                      "(", "3", ")", ")", ";"]
    assert norm('print(f"loss {v:.3f}", "x", end="")') == [
        "print", "(", "S", ",", "S", ",", "end", "=", "S", ")", ";"]
    # Unbalanced code still tokenises (a crude fallback), comments dropped.
    assert norm("y = f(a,\n# note\nb") == ["V", "=", "f", "(", "a", ",", ";", "b", ";"]


def test_question_of_each_cell_follows_headings_and_todo_keys() -> None:
    cells = [{"cell_type": "markdown", "source": "# Homework\n## 1.A Layers"},
             {"cell_type": "code", "source": "x = 1"},
             {"cell_type": "markdown", "source": "### details"},
             {"cell_type": "code", "source": "y = 2"},
             {"cell_type": "markdown", "source": "## Appendix"},
             {"cell_type": "code", "source": "# TODO (1.B forward): write your code here"},
             {"cell_type": "code", "source": "z = 3"},
             {"cell_type": "markdown", "source": "## Part 1.AB"}]
    assert similarity.cell_questions(cells, ["1.A", "1.B"]) == [
        "1.A", "1.A", "1.A", "1.A", "other", "1.B", "other", "other"]
    # The real templates: every cell with a stub belongs to a question of its assignment.
    for a in spec.load_all(ROOT):
        nb = similarity.load_template(ROOT, a.notebook)
        qs = similarity.cell_questions(nb.cells, [q.id for q in a.questions])
        stubs = [q for c, q in zip(nb.cells, qs) 
                 if c.cell_type == "code" and "raise NotImplementedError(" in c.source]
        assert stubs and all(q in {x.id for x in a.questions} for q in stubs), a.name


def test_winnowing_finds_every_long_enough_shared_run() -> None:
    rng = random.Random(14)
    for _ in range(200):
        vocab = [f"t{i}" for i in range(30)]
        shared = [rng.choice(vocab) for _ in range(similarity.K + similarity.WINDOW - 1)]
        a = [rng.choice(vocab) for _ in range(rng.randrange(40))] + shared + ["x"] * rng.randrange(9)
        b = ["y"] * rng.randrange(9) + shared + [rng.choice(vocab) for _ in range(rng.randrange(40))]
        fa = {h for h, _ in similarity.fingerprints(a)}
        fb = {h for h, _ in similarity.fingerprints(b)}
        assert fa & fb


def test_fingerprints_do_not_depend_on_the_hash_seed() -> None:
    code = ("from grader.reports import similarity\n"
            "print(similarity.fingerprints('for V in range ( V ) : V . append ( V ) ;'.split()))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed}, check=True).stdout
            for seed in ("1", "2", "3")}
    assert len(outs) == 1 and outs.pop().startswith("[(")


def test_corpus_pairs_are_with_students_never_inside_a_corpus(tmp_path: Path) -> None:
    source = SCENARIOS / "independent_helper_functions" / NOTEBOOK
    web = tmp_path / "web"
    (web / "repo1").mkdir(parents=True)
    shutil.copyfile(source, web / "repo1" / "hw3.ipynb")
    helpers = next(c.source for c in read_notebook(source).cells if "def rnn_step" in c.source)
    (web / "rnn.py").write_text(helpers)
    (web / "elsewhere.py").symlink_to(SCENARIOS.parent / "make_similarity.py")
    (web / ".ipynb_checkpoints").mkdir()
    shutil.copyfile(source, web / ".ipynb_checkpoints" / "hw3-checkpoint.ipynb")
    last_year = tmp_path / "last-year"
    shutil.copytree(SCENARIOS / "independent_einsum", last_year / "carol")
    report = compare([SCENARIOS / "copy_renamed_reordered", SCENARIOS / "independent_two_linears"],
                     against=[web, last_year])
    assert [(p.a.name, p.b.name, p.kind) for p in report.pairs] == [
        ("copy_renamed_reordered", "web/repo1/hw3.ipynb", "corpus"),
        ("copy_renamed_reordered", "web/rnn.py", "corpus")]
    assert report.pairs[1].questions == ["1.A"]
    assert [d.name for d in report.documents if d.corpus] == [
        "web/repo1/hw3.ipynb", "web/rnn.py", "last-year/carol/rnn_and_grad.ipynb"]
    everything = compare([SCENARIOS / "independent_two_linears"], against=[web], min_score=1e-9)
    assert not any(p.a.corpus for p in everything.pairs)  # web/repo1 and web/rnn.py: no pair


def test_unreadable_and_missing_notebooks_are_listed_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / NOTEBOOK).write_text("{not json")
    (tmp_path / "empty").mkdir()
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / NOTEBOOK).symlink_to(SCENARIOS / "independent_einsum" / NOTEBOOK)
    report = compare([tmp_path / "broken", tmp_path / "empty", tmp_path / "linked",
                      SCENARIOS / "independent_einsum"])
    # The rule grading uses chooses each notebook, and says why there is none.
    assert report.skipped == (
        f"empty: no notebook in the submission: upload your {NOTEBOOK}",
        f"linked: {NOTEBOOK} is a symbolic link (to {SCENARIOS / 'independent_einsum' / NOTEBOOK}); "
        "links are not graded: upload the notebook file itself",
        f"{tmp_path}/broken/{NOTEBOOK}: not a valid notebook (Notebook does not appear to be JSON: "
        "'{not json')")
    assert [d.name for d in report.documents] == ["independent_einsum"]


def test_hostile_code_is_read_without_crashing(tmp_path: Path) -> None:
    """Deep nesting, a 50,000-term sum, unterminated code: read as text, fingerprinted anyway."""
    sources = ["x = " + "(" * 5000 + "1" + ")" * 5000, "y = " + "+".join(["1"] * 50_000),
               "def f(:\n  return 'unterminated", "import ctypes\nctypes.CDLL(None).system(b'echo hi')  # never run"]
    nb = nbformat.v4.new_notebook(cells=[  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell(s) for s in sources])  # type: ignore[no-untyped-call]
    for student in ("p", "q"):
        write_text_atomic(tmp_path / student / NOTEBOOK, notebook_text(nb))
    report = compare([tmp_path / "p", tmp_path / "q"], min_score=1)
    assert [d.own_lines for d in report.documents] == [6, 6]
    assert [(p.a.name, p.b.name) for p in report.pairs] == [("p", "q")]


def test_csv_lists_each_pair_with_its_questions() -> None:
    rows = list(csv.reader(io.StringIO(similarity_page.csv_text(compare(the_class())))))
    assert rows[0] == ["rank", "a", "b", "kind", "score", "shared_lines_a", "shared_lines_b",
                       "own_lines_a", "own_lines_b", "questions", "score_1.A", "score_1.B",
                       "score_1.C", "score_1.D", "score_other"]
    assert [r[:4] for r in rows[1:]] == [
        ["1", "copy_renamed_reordered", "independent_helper_functions", "class"],
        ["2", "copy_comments_whitespace", "independent_einsum", "class"],
        ["3", "copy_one_question", "independent_split_weights", "class"]]
    one = rows[3]
    assert one[9] == "1.A" and float(one[10]) == pytest.approx(float(one[4]), abs=0.05)
    assert one[13:] == ["0.00", "0.00"]


def test_page_escapes_student_code_and_accuses_nobody(tmp_path: Path) -> None:
    evil = '<script>alert(1)</script>'
    nb = read_notebook(SCENARIOS / "independent_split_weights" / NOTEBOOK)
    for cell in nb.cells:
        if cell.cell_type == "code" and "self.W_x = " in cell.source:
            cell.source = cell.source.replace("scale = ", f"tag = {evil!r}  # {evil}\n        scale = ")
    for student in ("<b>x", "y"):
        write_text_atomic(tmp_path / student / NOTEBOOK, notebook_text(nb))
    page = similarity_page.render(compare(sorted(tmp_path.iterdir())))
    assert "<script" not in page.lower() and "<b>x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;x" in page
    assert "http" not in page and "<link" not in page  # self-contained
    assert "similar" in page and not any(w in page.lower() for w in ("plagiar", "cheat", "guilty"))


def test_cli_prints_the_ranked_table_and_writes_both_files(tmp_path: Path) -> None:
    r = grader_cli("similarity", str(SCENARIOS), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == (f"compared 12 submissions (11 with code of their own) and 0 corpus files: "
                         f"3 similar pairs; wrote {tmp_path}/out/similarity.csv and "
                         f"{tmp_path}/out/similarity.html")
    table = "\n".join(lines[:-1])
    assert table.index("copy_renamed_reordered") < table.index("copy_comments_whitespa") \
        < table.index("copy_one_question")
    assert "independent_two_linears" not in table and "untouched_stub" not in table
    assert (tmp_path / "out" / "similarity.csv").read_text() == similarity_page.csv_text(compare(the_class()))
    r = grader_cli("similarity", str(tmp_path / "nowhere"))
    assert (r.returncode, r.stderr) == (3, f"grader: error: {tmp_path}/nowhere: no such folder\n")
    r = grader_cli("similarity", str(SCENARIOS), "--against", str(tmp_path / "nowhere"),
                   "--out", str(tmp_path / "out2"))
    assert (r.returncode, r.stderr) == (3, f"grader: error: --against {tmp_path}/nowhere: no such folder\n")
    r = grader_cli("similarity", "--help")
    assert r.returncode == 0 and "Example: grader similarity submissions/" in r.stdout


@needs_chromium
def test_browser_shows_the_pairs_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _, page = similarity_page.write_outputs(compare(the_class()), out_dir=out)
    r = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    assert r.returncode == 0, r.stderr
    assert console_errors(r.stderr) == []
    dom = r.stdout
    assert dom.count('<section class="pair"') == 3
    assert "<h2>1. copy_renamed_reordered and independent_helper_functions: similar</h2>" in dom
    assert "<h3>1.A RNNLayer <small>(score 43.3)</small></h3>" in dom
    assert '<span class="r"><i>10</i>def rnn_step(x_t, h_prev, weight_in, weight_rec, bias, activation):</span>' in dom
    # Screenshot kept with the test's files (pytest's tmp_path) for a person to look at.
    shot = tmp_path / "similarity.png"
    r = chromium("--hide-scrollbars", "--window-size=1300,2400", f"--screenshot={shot}",
                 page.as_uri(), profile=tmp_path / "profile")
    assert r.returncode == 0, r.stderr
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")
