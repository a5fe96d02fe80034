"""Build student templates from reference notebooks (solution markers).

Rules, applied to code cells only (markdown and raw cells are copied unchanged):

* A block is a line ``# BEGIN SOLUTION`` or ``# BEGIN SOLUTION: <key>`` and a later line
  ``# END SOLUTION`` in the same cell, each alone on its line apart from indentation and trailing
  blanks. Blocks cannot nest or span cells. ``<key>`` labels the block (default
  ``"your code here"``); keys must be unique within a notebook (so at most one block may go
  without a key), non-empty, and contain no quote or backslash.
* In the template a block, markers included, becomes two lines at the BEGIN line's indentation::

      # TODO (<key>): write your code here
      raise NotImplementedError("<key>")

* A line (outside a block) whose code ends with the comment ``# SOLUTION`` is deleted from the
  template; ``replace_blocks`` keeps it with that comment stripped.
* A comment line that mentions ``BEGIN SOLUTION`` / ``END SOLUTION`` but is not a well-formed
  marker is an error, so a typo cannot leak a solution into the template.
* Outputs and execution counts are cleared in the template, as is the ``execution`` timing
  metadata of cells; notebook metadata (including ``metadata.grader``) is kept.

Output is deterministic: the same reference gives a byte-identical template.
"""

from __future__ import annotations

import copy
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grader.errors import BuildError
from grader.files import atomic_write_text
from grader.submission import read_node as read_notebook

__all__ = [
    "DEFAULT_KEY",
    "Block",
    "BuildError",
    "build_templates",
    "make_template",
    "notebook_text",
    "read_notebook",
    "replace_blocks",
    "solution_blocks",
    "stale_templates",
    "write_text_atomic",
]

DEFAULT_KEY = "your code here"

_BEGIN_RE = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?P<colon>:(?P<key>.*))?$")
_END_RE = re.compile(r"^[ \t]*# END SOLUTION$")
_NEAR_MISS_RE = re.compile(r"^\s*#.*\b(BEGIN|END)[ _-]?SOLUTION\b", re.IGNORECASE)
_LINE_MARK_RE = re.compile(r"^(?P<code>.*?)[ \t]*# SOLUTION$")
_BAD_KEY_CHARS = frozenset("\"'\\")


@dataclass(frozen=True)
class Block:
    """One solution block.

    ``start_line`` and ``end_line`` are the 1-based line numbers, within the cell's source, of the
    BEGIN and END markers. ``code`` is the text strictly between them with the BEGIN line's
    indentation removed (so ``replace_blocks(nb, replacements={b.key: b.code})`` reproduces the
    solution).
    """

    key: str
    cell_index: int
    start_line: int
    end_line: int
    indent: str
    code: str


def _error(
    source_name: str, cell_index: int, line_no: int, line: str, problem: str
) -> BuildError:
    return BuildError(
        f"{source_name}: cell {cell_index}, line {line_no}: {problem}: {line.strip()!r}"
    )


def _lines(source: str) -> list[str]:
    return source.split("\n")


def _clean(line: str) -> str:
    """The line as markers are matched: no trailing blanks or carriage return."""
    return line.rstrip(" \t\r")


def _cell_blocks(source: str, *, cell_index: int, source_name: str) -> list[Block]:
    blocks: list[Block] = []
    lines = _lines(source)
    open_at: int | None = None  # 0-based index of the open BEGIN line
    open_key = DEFAULT_KEY
    open_indent = ""
    for i, raw in enumerate(lines):
        line = _clean(raw)
        begin = _BEGIN_RE.match(line)
        end = _END_RE.match(line)
        if begin is not None:
            if open_at is not None:
                raise _error(
                    source_name,
                    cell_index,
                    i + 1,
                    raw,
                    f"nested '# BEGIN SOLUTION' (the block opened at line {open_at + 1} "
                    "is not closed)",
                )
            key = DEFAULT_KEY
            if begin.group("colon") is not None:
                key = (begin.group("key") or "").strip()
                if not key:
                    raise _error(
                        source_name, cell_index, i + 1, raw, "empty solution key"
                    )
                if any(c in _BAD_KEY_CHARS for c in key):
                    raise _error(
                        source_name,
                        cell_index,
                        i + 1,
                        raw,
                        "solution key must not contain quotes or backslashes",
                    )
            open_at, open_key, open_indent = i, key, begin.group("indent")
        elif end is not None:
            if open_at is None:
                raise _error(
                    source_name,
                    cell_index,
                    i + 1,
                    raw,
                    "'# END SOLUTION' without '# BEGIN SOLUTION'",
                )
            body: list[str] = []
            for j in range(open_at + 1, i):
                inner = lines[j]
                if inner.startswith(open_indent):
                    body.append(inner[len(open_indent) :])
                elif not inner.strip():
                    body.append("")
                else:
                    raise _error(
                        source_name,
                        cell_index,
                        j + 1,
                        inner,
                        "line is less indented than its '# BEGIN SOLUTION' marker",
                    )
            blocks.append(
                Block(
                    key=open_key,
                    cell_index=cell_index,
                    start_line=open_at + 1,
                    end_line=i + 1,
                    indent=open_indent,
                    code="\n".join(body),
                )
            )
            open_at = None
        elif _NEAR_MISS_RE.match(line):
            raise _error(
                source_name,
                cell_index,
                i + 1,
                raw,
                "malformed solution marker (expected '# BEGIN SOLUTION', "
                "'# BEGIN SOLUTION: <key>' or '# END SOLUTION' alone on the line)",
            )
    if open_at is not None:
        raise _error(
            source_name,
            cell_index,
            open_at + 1,
            lines[open_at],
            "'# BEGIN SOLUTION' without a matching '# END SOLUTION' in the same cell",
        )
    return blocks


def solution_blocks(nb: nbformat.NotebookNode, *, source_name: str) -> list[Block]:
    """All solution blocks of ``nb`` in order; raises BuildError on malformed markers."""
    blocks: list[Block] = []
    seen: dict[str, Block] = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for block in _cell_blocks(
            cell.source, cell_index=index, source_name=source_name
        ):
            first = seen.get(block.key)
            if first is not None:
                hint = (
                    " (give each block its own key with '# BEGIN SOLUTION: <key>')"
                    if block.key == DEFAULT_KEY
                    else ""
                )
                raise _error(
                    source_name,
                    index,
                    block.start_line,
                    _lines(cell.source)[block.start_line - 1],
                    f"duplicate solution key {block.key!r}, first used in cell "
                    f"{first.cell_index}, line {first.start_line}{hint}",
                )
            seen[block.key] = block
            blocks.append(block)
    return blocks


def _indent_code(code: str, indent: str) -> list[str]:
    lines = textwrap.dedent(code.replace("\r\n", "\n")).split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return [indent + "pass"]
    return [indent + line if line.strip() else "" for line in lines]


def _strip_line_mark(line: str) -> str | None:
    """For a line ending in ``# SOLUTION``: the line without that comment (None if nothing is left)."""
    match = _LINE_MARK_RE.match(_clean(line))
    if match is None:
        return line
    code = match.group("code")
    return code if code.strip() else None


def _rewrite(
    nb: nbformat.NotebookNode,
    *,
    source_name: str,
    replacement: dict[str, list[str] | None],
    template: bool,
) -> nbformat.NotebookNode:
    """Copy of ``nb`` with each block replaced by ``replacement[key]`` (None: keep its code)."""
    blocks = solution_blocks(nb, source_name=source_name)
    by_cell: dict[int, list[Block]] = {}
    for block in blocks:
        by_cell.setdefault(block.cell_index, []).append(block)
    out = copy.deepcopy(nb)
    for index, cell in enumerate(out.cells):
        if cell.cell_type != "code":
            continue
        lines = _lines(cell.source)
        cell_blocks = by_cell.get(index, [])
        new: list[str] = []
        i = 0
        for block in cell_blocks:
            new.extend(_outside(lines[i : block.start_line - 1], template=template))
            lines_for = replacement.get(block.key)
            if lines_for is None:
                inner = lines[block.start_line : block.end_line - 1]
                new.extend(_outside(inner, template=False))
            else:
                new.extend(lines_for)
            i = block.end_line
        new.extend(_outside(lines[i:], template=template))
        cell.source = "\n".join(new)
        if template:
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    return out


def _outside(lines: list[str], *, template: bool) -> list[str]:
    """Lines outside blocks: ``# SOLUTION`` lines are dropped (template) or stripped."""
    kept: list[str] = []
    for line in lines:
        stripped = _strip_line_mark(line)
        if stripped is line:
            kept.append(line)
        elif not template and stripped is not None:
            kept.append(stripped)
    return kept


def make_template(
    nb: nbformat.NotebookNode, *, source_name: str
) -> nbformat.NotebookNode:
    """The student template of a reference notebook (``nb`` itself is not modified)."""
    stubs: dict[str, list[str] | None] = {}
    for block in solution_blocks(nb, source_name=source_name):
        stubs[block.key] = [
            f"{block.indent}# TODO ({block.key}): write your code here",
            f'{block.indent}raise NotImplementedError("{block.key}")',
        ]
    return _rewrite(nb, source_name=source_name, replacement=stubs, template=True)


def replace_blocks(
    nb: nbformat.NotebookNode, *, source_name: str, replacements: Mapping[str, str]
) -> nbformat.NotebookNode:
    """Copy of ``nb`` with the named blocks' code replaced and every marker removed.

    Replacement code is dedented and re-indented to the block's indentation (an empty
    replacement becomes ``pass``). Blocks not named keep their solution code. Outputs are kept.
    """
    indents = {b.key: b.indent for b in solution_blocks(nb, source_name=source_name)}
    unknown = sorted(set(replacements) - set(indents))
    if unknown:
        raise BuildError(
            f"{source_name}: no solution block with key {', '.join(map(repr, unknown))} "
            f"(known keys: {', '.join(map(repr, indents))})"
        )
    table: dict[str, list[str] | None] = {
        key: _indent_code(code, indents[key]) for key, code in replacements.items()
    }
    return _rewrite(nb, source_name=source_name, replacement=table, template=False)


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """The canonical file text of a notebook (nbformat 4, trailing newline)."""
    text: str = nbformat.writes(nb, version=4)  # type: ignore[no-untyped-call]
    return text if text.endswith("\n") else text + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """A file students get: readable by all where it is new, else its mode kept."""
    atomic_write_text(path, text, new_mode=0o644)


def _reference_notebooks(reference_dir: Path) -> list[Path]:
    if not reference_dir.is_dir():
        raise BuildError(f"{reference_dir}: reference directory does not exist")
    return sorted(p for p in reference_dir.glob("*.ipynb") if p.is_file())


# What else a build puts into a template (the check cells): notebook file name, template -> template.
Decorate = Callable[[str, nbformat.NotebookNode], nbformat.NotebookNode]


def _template_text(reference: Path, decorate: Decorate | None = None) -> str:
    nb = make_template(read_notebook(reference), source_name=str(reference))
    if decorate is not None:
        nb = decorate(reference.name, nb)
    return notebook_text(nb)


def build_templates(*, reference_dir: Path, template_dir: Path,
                    decorate: Decorate | None = None) -> list[Path]:
    """Write ``template_dir/<name>`` for each ``reference_dir/*.ipynb``; return the paths written.

    Every template is computed before any is written, so a marker error writes nothing.
    """
    texts = [
        (template_dir / ref.name, _template_text(ref, decorate))
        for ref in _reference_notebooks(reference_dir)
    ]
    for path, text in texts:
        write_text_atomic(path, text)
    return [path for path, _ in texts]


def stale_templates(*, reference_dir: Path, template_dir: Path,
                    decorate: Decorate | None = None) -> list[str]:
    """Templates (e.g. ``hw1.ipynb``) that are missing or differ from what ``build_templates``
    would write."""
    stale: list[str] = []
    for ref in _reference_notebooks(reference_dir):
        target = template_dir / ref.name
        expected = _template_text(ref, decorate).encode("utf-8")
        if not target.is_file() or target.read_bytes() != expected:
            stale.append(ref.name)
    return stale
