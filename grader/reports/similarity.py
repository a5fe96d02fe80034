"""Similarity report: which submissions share the code their authors wrote.

Only a student's own code is compared (what the template does not hold), normalised, and
fingerprinted by winnowing token k-grams as MOSS does; a pair scores the fingerprints it shares,
each weighted by how rare it is in the class. Student code is read as text, never executed.
``docs/similarity.md`` explains the method and its limits.
"""

from __future__ import annotations

import ast
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
from grader.files import read_capped
from grader.submission import MAX_NOTEBOOK_BYTES, choose_notebook, read_node

K = 10  # tokens per k-gram: about one line of code
WINDOW = 4  # so any shared run of K + WINDOW - 1 = 13 normalised tokens yields a shared fingerprint
MIN_SCORE = 20.0  # about 50 tokens (four or five lines) of code nobody else in the class wrote
MIN_FRAGMENT = 5  # own code shorter than this (tokens) in a cell is not fingerprinted at all
OTHER = "other"
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

    @property
    def questions_text(self) -> str:
        return ", ".join(f"{q} {self.by_question[q]:.1f}" for q in self.questions)

    @property
    def shared_lines(self) -> tuple[int, int]:
        """Own lines of ``a`` and of ``b`` holding shared code."""
        return len(self.marks_a), len(self.marks_b)


@dataclass(frozen=True)
class SimilarityReport:
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


def _unmagic(source: str) -> str:
    return "\n".join("" if _MAGIC.match(line) else line for line in source.split("\n"))


def lex(source: str) -> list[Tok]:
    """Tokens of a code cell, without comments, blank lines and indentation."""
    text, out, depth = _unmagic(source), [], 0
    try:
        for t in tokenize.generate_tokens(io.StringIO(text).readline):
            if t.type == _FSTRING_START:  # one STRING for the whole f-string, as before 3.12
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
            for w in _FALLBACK.findall(code):
                kind = (tokenize.NAME if w[0].isalpha() or w[0] == "_" else tokenize.NUMBER
                        if w[0].isdigit() else tokenize.STRING if w[0] in "\"'" else tokenize.OP)
                out.append((kind, w, i))
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


def bound_identifiers(source: str, own: frozenset[int], toks: list[Tok]) -> set[str]:
    """Identifiers the author binds on their own lines: variables, parameters, attributes, defs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in student strings
            tree = ast.parse(_unmagic(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # a name before "=", etc.
        return {t[1] for prev, t, nxt in zip([None, *toks], toks, [*toks[1:], None])
                if t[0] == tokenize.NAME and t[2] in own and (
                    (nxt is not None and nxt[1] in {"=", "+=", "-=", "*=", "/="})
                    or (prev is not None and prev[1] in {"def", "class", "for", "as"}))} - _KEEP
    bound: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) - 1 not in own:
            continue
        stored = not isinstance(getattr(node, "ctx", ast.Load()), ast.Load)
        found = (node.id if isinstance(node, ast.Name) and stored else
                 node.attr if isinstance(node, ast.Attribute) and stored else
                 node.arg if isinstance(node, ast.arg) else
                 node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                ast.ClassDef, ast.ExceptHandler)) else
                 node.asname if isinstance(node, ast.alias) else None)
        if found:
            bound.add(found)
    return bound - _KEEP


def normalise(tok: Tok, bound: set[str]) -> str:
    """``V`` for a name the author bound, ``S`` for a string; anything else as written."""
    kind, text, _ = tok
    if kind == tokenize.STRING:
        return "S"
    return "V" if kind == tokenize.NAME and text in bound and not keyword.iskeyword(text) else text


def winnow(hashes: Sequence[int], window: int = WINDOW) -> list[int]:
    """Positions chosen by robust winnowing: each window's minimum, the rightmost on ties."""
    chosen: list[int] = []
    for start in range(max(1, len(hashes) - window + 1)):
        win = hashes[start:start + window]
        pos = start + len(win) - 1 - win[::-1].index(min(win))
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

    A heading at the question heading's level or above that mentions no question ends it. A
    ``# TODO (<key>)`` stub whose key starts with a question id ("Q1 forward") wins.
    """
    patterns = [(q, re.compile(rf"(?<![\w.]){re.escape(q)}(?!\w)")) for q in ids]
    current, level, out = OTHER, 0, []
    for cell in cells:
        source = str(cell.get("source", ""))
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


class Template:
    """What the student template gives: its statements, and the question of each of its cells."""

    def __init__(self, nb: nbformat.NotebookNode, question_ids: Sequence[str]) -> None:
        self.question_ids = tuple(question_ids)
        code = [(i, str(c.get("source", ""))) for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]
        self.sources = {source.strip() for _, source in code}
        self.keys: dict[str, set[int]] = {}  # statement key -> template cells holding it
        for i, source in code:
            for stmt in statements(lex(source)):
                self.keys.setdefault(statement_key(stmt), set()).add(i)
        self.cell_question = dict(enumerate(cell_questions(nb.cells, question_ids)))


def read_document(path: Path, *, name: str, template: Template, corpus: str = "") -> Document:
    """A notebook (or, in a corpus, a .py file) reduced to its author's own code."""
    cells: Sequence[Mapping[str, Any]]
    if path.suffix == ".py":
        text = read_capped(path, MAX_NOTEBOOK_BYTES, what="source").decode("utf-8", "replace")
        cells = [{"cell_type": "code", "source": text}]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cells = read_node(path).cells
    headings = cell_questions(cells, template.question_ids)
    parsed: list[tuple[Cell, list[list[Tok]]]] = []
    bound: set[str] = set()
    for i, cell in enumerate(cells):
        source = str(cell.get("source", ""))
        if cell.get("cell_type") != "code" or source.strip() in template.sources:
            continue
        toks = lex(source)
        # Runs of own statements; a given statement ends a run, so no k-gram spans given code.
        runs: list[list[Tok]] = [[]]
        given_lines: set[int] = set()
        votes: dict[int, int] = {}  # template cell -> statements of it in this cell
        for stmt in statements(toks):
            given = template.keys.get(statement_key(stmt))
            if given is None:
                runs[-1] += [*stmt, (tokenize.NEWLINE, ";", stmt[-1][2])]
            else:
                given_lines.update(t[2] for t in stmt)
                votes.update({j: votes.get(j, 0) + 1 for j in given})
                runs.append([])
        runs = [r for r in runs if r]
        if not runs:
            continue
        # The template cell this one grew from decides the question; a new cell goes by headings.
        best = max(votes, key=lambda j: (votes[j], -j)) if votes else None
        question = template.cell_question[best] if best is not None else headings[i]
        own = frozenset(t[2] for run in runs for t in run)
        bound |= bound_identifiers(source, own, toks)
        parsed.append((Cell(i, question, tuple(source.split("\n")), own,
                            frozenset(given_lines - own)), runs))
    spans: dict[int, list[tuple[int, frozenset[int]]]] = {}
    for position, (_, runs) in enumerate(parsed):
        for run in runs:
            norm = [";" if t[0] == tokenize.NEWLINE else normalise(t, bound) for t in run]
            for h, start in fingerprints(norm):
                covered = frozenset(t[2] for t in run[start:start + K] if t[0] != tokenize.NEWLINE)
                spans.setdefault(h, []).append((position, covered))
    return Document(name, path, corpus, tuple(c for c, _ in parsed),
                    {h: tuple(v) for h, v in spans.items()})


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
    marks: tuple[dict[tuple[int, int], float], ...] = ({}, {})
    cells_b: dict[str, set[int]] = {}
    for h in a.spans.keys() & b.spans.keys():
        w, q = weight.get(h, 1.0), a.cells[a.spans[h][0][0]].question
        by_question[q] = by_question.get(q, 0.0) + w
        cells_b.setdefault(q, set()).update(position for position, _ in b.spans[h])
        for doc, mark in zip((a, b), marks):
            for key in {(position, line) for position, lines in doc.spans[h] for line in lines}:
                mark[key] = max(mark.get(key, 0.0), w)
    return Pair(a, b, sum(by_question.values()), by_question, marks[0], marks[1],
                {q: frozenset(v) for q, v in cells_b.items()})


def score_pairs(documents: Sequence[Document], *, min_score: float) -> list[Pair]:
    """Every student-student and student-corpus pair scoring at least ``min_score``, best first."""
    n = sum(1 for d in documents if not d.corpus and d.spans)
    holders: dict[int, list[int]] = {}
    for i, d in enumerate(documents):
        for h in d.spans:
            holders.setdefault(h, []).append(i)
    weight: dict[int, float] = {}
    columns: list[tuple[list[int], float]] = []
    for h, rows in holders.items():
        in_class = sum(1 for r in rows if not documents[r].corpus)
        if len(rows) >= 2 and in_class >= 1:  # shared, and not by corpus files alone
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
    # float32 sums: a pair exactly at the threshold must not fall below it by rounding
    found = zip(*np.nonzero(np.triu(scores) >= max(min_score - 1e-6, 1e-9)))
    pairs = [_pair(documents[j], documents[i], weight) if documents[i].corpus else
             _pair(documents[i], documents[j], weight) for i, j in found]
    pairs.sort(key=lambda p: (-round(p.score, 6), p.a.name, p.b.name))
    return pairs


def _corpus_files(folder: Path) -> Iterable[Path]:
    inside = folder.resolve()
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if p.is_file() and p.suffix in {".ipynb", ".py"} and not p.is_symlink() and not any(
                part.startswith(".") or part == "__pycache__" for part in rel) \
                and p.resolve().is_relative_to(inside):
            yield p


def compare(*, assignment: str, template: nbformat.NotebookNode, question_ids: Sequence[str],
            titles: dict[str, str] | None = None, students: Sequence[Path], notebook: str,
            against: Sequence[Path] = (), min_score: float = MIN_SCORE) -> SimilarityReport:
    """Compare the students' folders (each holding ``notebook``) with each other and the corpora."""
    tpl = Template(template, question_ids)
    docs: list[Document] = []
    skipped: list[str] = []
    todo: list[tuple[Path | None, str, str]] = []
    for folder in students:
        choice = choose_notebook(folder, notebook)  # the rule grading uses
        if choice.path is None:
            skipped.append(f"{folder.name}: {choice.message}")
        todo.append((choice.path, folder.name, ""))
    for corpus in against:
        if not corpus.is_dir():
            raise InputError(f"--against {corpus}: no such folder")
        todo += [(p, f"{corpus.name}/{p.relative_to(corpus).as_posix()}", corpus.name)
                 for p in _corpus_files(corpus)]
    for path, name, corpus_name in todo:
        try:
            if path is None:
                continue
            docs.append(read_document(path, name=name, template=tpl, corpus=corpus_name))
        except InputError as exc:
            skipped.append(str(exc))
    return SimilarityReport(assignment, tuple(question_ids), dict(titles or {}), tuple(docs),
                  tuple(score_pairs(docs, min_score=min_score)), min_score, tuple(skipped))


def load_template(root: Path, notebook: str) -> nbformat.NotebookNode:
    """The student template of ``notebook``: student_template/, else made from reference/."""
    from grader.publish import template

    path = root / "student_template" / notebook
    if path.is_file():
        return read_node(path)
    reference = root / "reference" / notebook
    if not reference.is_file():
        raise InputError(f"no student_template/{notebook} or reference/{notebook} under {root}")
    return template.make_template(read_node(reference), source_name=str(reference))

