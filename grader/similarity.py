"""Similarity report: which submissions share the code their authors wrote.

Only a student's own code is compared: the statements of their code cells that the student
template does not already hold. That code is tokenised (``tokenize``; comments, layout and the
template's statements drop out), names the author bound are replaced by ``V`` and string literals
by ``S`` (library names such as ``torch.cat`` stay), and fingerprinted by winnowing over token
k-grams (Schleimer, Wilkerson and Aiken, 2003, as MOSS does). A pair scores the fingerprints it
shares, each weighted by how rare it is in the class, so a short answer most students write
counts for little. ``docs/similarity.md`` says why and where this stops working.

Student code is read as text, never executed. Output is deterministic: fingerprints are hashed
from token text with CRC-32 and tuple hashing of ints, neither of which Python randomises.
"""

from __future__ import annotations

import ast
import csv
import io
import keyword
import re
import tokenize
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

from grader.errors import InputError

K = 10  # tokens per k-gram: about one line of code
WINDOW = 4  # so any shared run of K + WINDOW - 1 = 13 normalised tokens yields a shared fingerprint
MIN_SCORE = 20.0  # about 50 tokens (four or five lines) of code nobody else in the class wrote
MIN_FRAGMENT = 5  # own code shorter than this (tokens) in a cell is not fingerprinted at all
OTHER = "other"
MAX_NOTEBOOK_BYTES = 20 * 2**20  # the limit batch.py applies before it parses a notebook
_KEEP = frozenset({"self", "cls"})
_MAGIC = re.compile(r"^\s*[%!]")
_FALLBACK = re.compile(
    r"""[A-Za-z_]\w*|\d[\w.]*|"[^"\n]*"?|'[^'\n]*'?|\*\*=?|//=?|->|[-+*/%@&|^<>=!]=|\S""")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_TODO_KEY = re.compile(r"#\s*TODO \((?P<key>[^)]*)\)")
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
         tokenize.ENDMARKER}
_FSTRING_START = getattr(tokenize, "FSTRING_START", -1)  # Python >= 3.12 splits f-strings
_FSTRING_END = getattr(tokenize, "FSTRING_END", -1)

Tok = tuple[int, str, int]  # token type, text, 0-based line within the cell


@dataclass(frozen=True)
class Cell:
    """A code cell with own code: its source lines and which of them are the author's."""

    index: int
    question: str
    lines: tuple[str, ...]
    own: frozenset[int]
    given: frozenset[int]  # lines of the template's statements


@dataclass(frozen=True)
class Document:
    """One submission (``corpus`` empty) or one file of a reference corpus."""

    name: str
    path: Path
    corpus: str
    cells: tuple[Cell, ...]
    # fingerprint -> where it occurs: (position in ``cells``, the lines its k-gram covers)
    spans: dict[int, tuple[tuple[int, frozenset[int]], ...]]

    @property
    def own_lines(self) -> int:
        return sum(len(c.own) for c in self.cells)


@dataclass(frozen=True)
class Pair:
    a: Document
    b: Document
    score: float
    by_question: dict[str, float]  # keyed by the question where ``a`` has the shared code
    marks_a: dict[tuple[int, int], float]  # (cell position, line) -> rarity of what it shares
    marks_b: dict[tuple[int, int], float]
    cells_b: dict[str, frozenset[int]]  # question of ``a`` -> cells of ``b`` sharing code with it

    @property
    def kind(self) -> str:
        return "corpus" if self.b.corpus else "class"

    @property
    def questions(self) -> list[str]:
        """Questions carrying a tenth or more of the score, most first."""
        return [q for q, s in sorted(self.by_question.items(), key=lambda kv: -kv[1])
                if s >= max(1.0, 0.1 * self.score)]


@dataclass(frozen=True)
class Report:
    assignment: str
    questions: tuple[str, ...]
    titles: dict[str, str]
    documents: tuple[Document, ...]
    pairs: tuple[Pair, ...]  # score >= min_score, highest first
    min_score: float
    skipped: tuple[str, ...]

    @property
    def students(self) -> list[Document]:
        return [d for d in self.documents if not d.corpus]


def lex(source: str) -> list[Tok]:
    """Tokens of a code cell, without comments, blank lines and indentation."""
    lines = source.split("\n")
    text = "\n".join("" if _MAGIC.match(line) else line for line in lines)  # IPython magics
    out: list[Tok] = []
    depth = 0
    try:
        for t in tokenize.generate_tokens(io.StringIO(text).readline):
            if t.type == _FSTRING_START:
                depth += 1
                if depth == 1:
                    out.append((tokenize.STRING, t.string, t.start[0] - 1))
            elif depth:
                depth -= t.type == _FSTRING_END
            elif t.type not in _SKIP and t.string.strip() or t.type == tokenize.NEWLINE:
                out.append((t.type, t.string, t.start[0] - 1))
    except (tokenize.TokenError, SyntaxError):
        # Unbalanced brackets or bad indentation: words and symbols still fingerprint well.
        out = []
        for i, line in enumerate(text.split("\n")):
            code = line.split("#", 1)[0]
            for m in _FALLBACK.finditer(code):
                s = m.group()
                kind = (tokenize.NAME if s[0].isalpha() or s[0] == "_" else tokenize.NUMBER
                        if s[0].isdigit() else tokenize.STRING if s[0] in "\"'" else tokenize.OP)
                out.append((kind, s, i))
            if code.strip():
                out.append((tokenize.NEWLINE, "", i))
    return out


def statements(toks: list[Tok]) -> list[list[Tok]]:
    """Tokens split into logical statements (at NEWLINE and ``;``)."""
    out: list[list[Tok]] = [[]]
    for t in toks:
        if t[0] == tokenize.NEWLINE or t[1] == ";":
            if out[-1]:
                out.append([])
        else:
            out[-1].append(t)
    return [s for s in out if s]


def statement_key(stmt: list[Tok]) -> str:
    return " ".join(t[1] for t in stmt)


def bound_names(source: str, own: frozenset[int], toks: list[Tok]) -> set[str]:
    """Names the author binds on their own lines: variables, parameters, attributes, defs."""
    text = "\n".join("" if _MAGIC.match(line) else line for line in source.split("\n"))
    names: set[str] = set()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in student strings
            tree = ast.parse(text)
    except (SyntaxError, ValueError):
        for prev, t, nxt in zip([None, *toks], toks, [*toks[1:], None]):
            if t[0] == tokenize.NAME and t[2] in own and (
                    (nxt is not None and nxt[1] in {"=", "+=", "-=", "*=", "/="})
                    or (prev is not None and prev[1] in {"def", "class", "for", "as"})):
                names.add(t[1])
        return names - _KEEP
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) - 1 not in own:
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias) and node.asname:
            names.add(node.asname)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names - _KEEP


def normalise(tok: Tok, bound: set[str]) -> str:
    kind, text, _ = tok
    if kind == tokenize.NAME and not keyword.iskeyword(text):
        return "V" if text in bound else text
    if kind == tokenize.STRING:
        return "S"
    return text


def winnow(hashes: Sequence[int], window: int = WINDOW) -> list[int]:
    """Positions chosen by robust winnowing: each window's minimum, the rightmost on ties."""
    chosen: list[int] = []
    for start in range(max(1, len(hashes) - window + 1)):
        win = hashes[start:start + window]
        low = min(win)
        pos = start + len(win) - 1 - list(reversed(win)).index(low)
        if not chosen or chosen[-1] != pos:
            chosen.append(pos)
    return chosen


def fingerprints(tokens: Sequence[str], k: int = K, window: int = WINDOW) -> list[tuple[int, int]]:
    """(hash, start position) of the winnowed k-grams of a normalised token sequence."""
    if len(tokens) < MIN_FRAGMENT:
        return []
    ids = [zlib.crc32(t.encode()) for t in tokens]
    k = min(k, len(ids))
    grams = [hash(tuple(ids[i:i + k])) for i in range(len(ids) - k + 1)]
    return [(grams[p], p) for p in winnow(grams, window)]


def cell_questions(cells: Sequence[Mapping[str, Any]], ids: Sequence[str]) -> list[str]:
    """The question each cell belongs to: the last heading naming a question id, else OTHER.

    A heading at the question heading's level or above that names no question ends it. A
    ``# TODO (<key>)`` stub whose key starts with a question id ("1.A forward") wins.
    """
    patterns = [(q, re.compile(rf"(?<![\w.]){re.escape(q)}(?!\w)")) for q in ids]
    current, level, out = OTHER, 0, []
    for cell in cells:
        source = _source(cell)
        if cell.get("cell_type") == "markdown":
            for line in source.split("\n"):
                m = _HEADING.match(line.strip())
                if m is None:
                    continue
                named = [q for q, p in patterns if p.search(m.group(2))]
                if named:
                    current, level = named[0], len(m.group(1))
                elif current != OTHER and len(m.group(1)) <= level:
                    current = OTHER
        question = current
        for m in _TODO_KEY.finditer(source):
            keyed = [q for q in ids if m.group("key").startswith(q)]
            if keyed:
                question = max(keyed, key=len)
        out.append(question)
    return out


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


class Template:
    """What the student template gives: its statements, and the question of each of its cells."""

    def __init__(self, nb: nbformat.NotebookNode, question_ids: Sequence[str]) -> None:
        self.question_ids = tuple(question_ids)
        self.sources: set[str] = set()
        self.keys: dict[str, set[int]] = {}  # statement key -> template cells holding it
        questions = cell_questions(nb.cells, question_ids)
        self.cell_question: dict[int, str] = {}
        for i, cell in enumerate(nb.cells):
            if cell.get("cell_type") != "code":
                continue
            source = _source(cell)
            self.sources.add(source.strip())
            self.cell_question[i] = questions[i]
            for stmt in statements(lex(source)):
                self.keys.setdefault(statement_key(stmt), set()).add(i)


def read_document(path: Path, *, name: str, template: Template, corpus: str = "") -> Document:
    """A notebook (or, in a corpus, a .py file) reduced to its author's own code."""
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            raise InputError(f"{path}: larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".py":
            cells: Sequence[Mapping[str, Any]] = [{"cell_type": "code", "source": text}]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cells = nbformat.reads(text, as_version=4).cells  # type: ignore[no-untyped-call]
    except InputError:
        raise
    except Exception as exc:  # any unreadable notebook is reported, not fatal
        raise InputError(f"{path}: not a readable notebook ({type(exc).__name__})") from exc
    headings = cell_questions(cells, template.question_ids)
    parsed: list[tuple[int, str, list[list[Tok]], frozenset[int], frozenset[int], str]] = []
    bound: set[str] = set()
    for i, cell in enumerate(cells):
        source = _source(cell)
        if cell.get("cell_type") != "code" or source.strip() in template.sources:
            continue
        toks = lex(source)
        # Runs of own statements; a given statement ends a run, so no k-gram spans given code.
        runs: list[list[Tok]] = [[]]
        given_lines: set[int] = set()
        votes: dict[int, int] = {}
        for stmt in statements(toks):
            given = template.keys.get(statement_key(stmt))
            if given is None:
                runs[-1] += [*stmt, (tokenize.NEWLINE, ";", stmt[-1][2])]
            else:
                given_lines.update(t[2] for t in stmt)
                for j in given:
                    votes[j] = votes.get(j, 0) + 1
                if runs[-1]:
                    runs.append([])
        runs = [r for r in runs if r]
        if not runs:
            continue
        # The template cell this one grew from decides the question; a new cell goes by headings.
        best = max(votes, key=lambda j: (votes[j], -j)) if votes else None
        question = template.cell_question[best] if best is not None else headings[i]
        own = frozenset(t[2] for run in runs for t in run)
        bound |= bound_names(source, own, toks)
        parsed.append((i, question, runs, own, frozenset(given_lines - own), source))
    own_cells: list[Cell] = []
    spans: dict[int, list[tuple[int, frozenset[int]]]] = {}
    for i, question, runs, own, given_at, source in parsed:
        position = len(own_cells)
        own_cells.append(Cell(i, question, tuple(source.split("\n")), own, given_at))
        for run in runs:
            norm = [";" if t[0] == tokenize.NEWLINE else normalise(t, bound) for t in run]
            for h, start in fingerprints(norm):
                covered = frozenset(t[2] for t in run[start:start + K] if t[0] != tokenize.NEWLINE)
                spans.setdefault(h, []).append((position, covered))
    return Document(name, path, corpus, tuple(own_cells), {h: tuple(v) for h, v in spans.items()})


def rarity(holders: int, class_size: int) -> float:
    """Weight of a fingerprint ``holders`` students of ``class_size`` have.

    ``(1 - p) ** 4`` where ``p`` is the fraction of the rest of the class (beyond the two of a
    pair) that has it too: 1 if nobody else does, 0.66 if a tenth does, 0.06 if half does.
    """
    if class_size < 3 or holders <= 2:
        return 1.0
    return float((1.0 - min(1.0, (holders - 2) / (class_size - 2))) ** 4)


def _pair(a: Document, b: Document, weight: dict[int, float]) -> Pair:
    by_question: dict[str, float] = {}
    marks_a: dict[tuple[int, int], float] = {}
    marks_b: dict[tuple[int, int], float] = {}
    cells_b: dict[str, set[int]] = {}
    score = 0.0
    for h in a.spans.keys() & b.spans.keys():
        w = weight.get(h, 1.0)
        score += w
        q = a.cells[a.spans[h][0][0]].question
        by_question[q] = by_question.get(q, 0.0) + w
        for doc, marks in ((a, marks_a), (b, marks_b)):
            for position, lines in doc.spans[h]:
                for line in lines:
                    key = (position, line)
                    marks[key] = max(marks.get(key, 0.0), w)
                if doc is b:
                    cells_b.setdefault(q, set()).add(position)
    return Pair(a, b, score, by_question, marks_a, marks_b,
                {q: frozenset(v) for q, v in cells_b.items()})


def score_pairs(documents: Sequence[Document], *, min_score: float) -> list[Pair]:
    """Every student-student and student-corpus pair scoring at least ``min_score``, best first."""
    class_docs = [i for i, d in enumerate(documents) if not d.corpus and d.spans]
    holders: dict[int, list[int]] = {}
    for i, d in enumerate(documents):
        for h in d.spans:
            holders.setdefault(h, []).append(i)
    n = len(class_docs)
    weight: dict[int, float] = {}
    columns: list[tuple[list[int], float]] = []
    for h, rows in holders.items():
        in_class = sum(1 for r in rows if not documents[r].corpus)
        if len(rows) >= 2 and in_class >= 1:
            weight[h] = rarity(in_class, n)
            columns.append((rows, weight[h]))
    # Scores of all pairs at once: S = M diag(w) M^T over the shared fingerprints, in chunks.
    scores = np.zeros((len(documents), len(documents)), dtype=np.float64)
    for start in range(0, len(columns), 4096):
        chunk = columns[start:start + 4096]
        m = np.zeros((len(documents), len(chunk)), dtype=np.float32)
        for c, (rows, _) in enumerate(chunk):
            m[rows, c] = 1.0
        w = np.array([wt for _, wt in chunk], dtype=np.float32)
        scores += (m * w) @ m.T
    is_corpus = np.array([bool(d.corpus) for d in documents])
    scores[np.ix_(is_corpus, is_corpus)] = 0.0  # never a pair inside the corpora
    np.fill_diagonal(scores, 0.0)
    pairs = []
    # float32 sums: a pair exactly at the threshold must not fall below it by rounding
    for i, j in zip(*np.nonzero(np.triu(scores) >= max(min_score - 1e-6, 1e-9))):
        a, b = documents[int(i)], documents[int(j)]
        if a.corpus:
            a, b = b, a
        pairs.append(_pair(a, b, weight))
    pairs.sort(key=lambda p: (-round(p.score, 6), p.a.name, p.b.name))
    return pairs


def _notebook_in(folder: Path, notebook: str) -> Path | None:
    if (folder / notebook).is_file():
        return folder / notebook
    found = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    return found[0] if len(found) == 1 else None


def _corpus_files(folder: Path) -> Iterable[Path]:
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if p.is_file() and p.suffix in {".ipynb", ".py"} and not any(
                part.startswith(".") or part == "__pycache__" for part in rel):
            yield p


def compare(*, assignment: str, template: nbformat.NotebookNode, question_ids: Sequence[str],
            titles: dict[str, str] | None = None, students: Sequence[Path], notebook: str,
            against: Sequence[Path] = (), min_score: float = MIN_SCORE) -> Report:
    """Compare the students' folders (each holding ``notebook``) with each other and the corpora."""
    tpl = Template(template, question_ids)
    docs: list[Document] = []
    skipped: list[str] = []
    for folder in students:
        path = _notebook_in(folder, notebook)
        if path is None:
            skipped.append(f"{folder.name}: no {notebook}")
            continue
        try:
            docs.append(read_document(path, name=folder.name, template=tpl))
        except InputError as exc:
            skipped.append(str(exc))
    for corpus in against:
        if not corpus.is_dir():
            raise InputError(f"--against {corpus}: no such folder")
        for path in _corpus_files(corpus):
            label = f"{corpus.name}/{path.relative_to(corpus).as_posix()}"
            try:
                docs.append(read_document(path, name=label, template=tpl, corpus=corpus.name))
            except InputError as exc:
                skipped.append(str(exc))
    return Report(assignment, tuple(question_ids), dict(titles or {}), tuple(docs),
                  tuple(score_pairs(docs, min_score=min_score)), min_score, tuple(skipped))


def shared_lines(p: Pair) -> tuple[int, int]:
    return len(p.marks_a), len(p.marks_b)


def questions_text(p: Pair) -> str:
    return ", ".join(f"{q} {p.by_question[q]:.1f}" for q in p.questions)


def csv_text(report: Report) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "a", "b", "kind", "score", "shared_lines_a", "shared_lines_b",
                "own_lines_a", "own_lines_b", "questions",
                *[f"score_{q}" for q in (*report.questions, OTHER)]])
    for rank, p in enumerate(report.pairs, 1):
        la, lb = shared_lines(p)
        w.writerow([rank, p.a.name, p.b.name, p.kind, f"{p.score:.2f}", la, lb, p.a.own_lines,
                    p.b.own_lines, " ".join(p.questions),
                    *[f"{p.by_question.get(q, 0.0):.2f}" for q in (*report.questions, OTHER)]])
    return buf.getvalue()


def load_template(root: Path, notebook: str) -> nbformat.NotebookNode:
    """The student template of ``notebook``: student_template/, else made from reference/."""
    from grader import build

    path = root / "student_template" / notebook
    if path.is_file():
        return build.read_notebook(path)
    reference = root / "reference" / notebook
    if not reference.is_file():
        raise InputError(f"no student_template/{notebook} or reference/{notebook} under {root}")
    return build.make_template(build.read_notebook(reference), source_name=str(reference))


def write_outputs(report: Report, *, out_dir: Path) -> list[Path]:
    """Write ``similarity.csv`` and ``similarity.html`` into ``out_dir``; return their paths."""
    from grader import similarity_page
    from grader.build import write_text_atomic

    written = [out_dir / "similarity.csv", out_dir / similarity_page.PAGE_NAME]
    write_text_atomic(written[0], csv_text(report))
    write_text_atomic(written[1], similarity_page.render(report))
    return written
