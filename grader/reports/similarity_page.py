"""The report's files: ``similarity.csv`` and a self-contained ``similarity.html``.

The page lists the ranked pairs, then shows each pair's code side by side with the shared parts
highlighted. It says "similar", never "copied": it shows which code two submissions share and
how rare that code is in the class, and leaves the judgement to the instructor. Everything on it
comes from student files, so all of it goes through ``html.escape``; it has no scripts and loads
nothing.
"""

from __future__ import annotations

import csv
import io
from html import escape
from pathlib import Path

from grader.publish.template import write_text_atomic
from grader.reports.similarity import OTHER, Cell, Document, Pair, SimilarityReport

PAGE_NAME = "similarity.html"
CSV_NAME = "similarity.csv"
MAX_DETAILED = 50  # pairs shown side by side; the table lists every pair
RARE = 0.5  # shared code weighted at least this is highlighted strongly
_FOLD = 4  # runs of given lines longer than this are folded into one line

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
       background: #f6f7f9; margin: 0; }
main { max-width: 90rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 0 0 .4rem; }
h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
h4 { font-size: .9rem; margin: 0 0 .3rem; font-weight: 600; }
.sub { color: #5b6475; margin: .25rem 0 1rem; }
.note { background: #fffbea; border: 1px solid #f0d88a; padding: .6rem .9rem; border-radius: .4rem; }
table { border-collapse: collapse; background: #fff; margin: 1rem 0; width: 100%; }
th, td { border: 1px solid #dfe3e8; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #eef0f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
section.pair { background: #fff; border: 1px solid #dfe3e8; border-radius: .5rem;
               padding: .75rem 1rem 1rem; margin: 1.25rem 0; }
.side { display: grid; grid-template-columns: 1fr 1fr; gap: .75rem; }
.side > div { min-width: 0; }
.cell { font: .8rem/1.35 ui-monospace, SFMono-Regular, Menlo, monospace; background: #f8f9fb;
        border: 1px solid #e2e5ea; border-radius: .35rem; padding: .3rem 0; margin: 0 0 .5rem;
        overflow-x: auto; white-space: pre; }
.cell .h { color: #7a8394; padding: 0 .6rem; font-family: system-ui, sans-serif; }
.cell span { display: block; padding: 0 .6rem; }
.cell .g { color: #98a0ad; }
.cell .r { background: #ffd8a8; } .cell .c { background: #fff1dc; }
.cell i { color: #98a0ad; font-style: normal; display: inline-block; width: 2.2em; }
.empty { color: #7a8394; font-style: italic; }
.legend mark { padding: 0 .3rem; } .legend .r { background: #ffd8a8; } .legend .c { background: #fff1dc; }
footer { color: #7a8394; font-size: .8rem; margin-top: 2rem; }
"""


def _cell_html(doc: Document, position: int, marks: dict[tuple[int, int], float]) -> str:
    cell: Cell = doc.cells[position]
    out = [f'<div class="cell"><div class="h">cell {cell.index}</div>']
    other: list[int] = []  # a run of lines that are not the author's code

    def flush() -> None:
        given = sum(1 for n in other if n in cell.given)
        if given > _FOLD:
            out.append(f'<span class="g"><i></i>⋯ {len(other)} lines of given code</span>')
        else:
            for n in other:
                cls = ' class="g"' if n in cell.given else ""
                out.append(f"<span{cls}><i>{n + 1}</i>{escape(cell.lines[n])}</span>")
        other.clear()

    for n, line in enumerate(cell.lines):
        if n not in cell.own:
            other.append(n)
            continue
        flush()
        w = marks.get((position, n))
        cls = "" if w is None else ' class="r"' if w >= RARE else ' class="c"'
        out.append(f"<span{cls}><i>{n + 1}</i>{escape(line)}</span>")
    flush()
    out.append("</div>")
    return "".join(out)


def _column(doc: Document, positions: list[int], marks: dict[tuple[int, int], float]) -> str:
    label = escape(doc.name) + (" (corpus)" if doc.corpus else "")
    body = "".join(_cell_html(doc, p, marks) for p in positions) or \
        '<p class="empty">no code of its own here</p>'
    return f"<div><h4>{label}</h4>{body}</div>"


def _sections(report: SimilarityReport, p: Pair) -> list[str]:
    order = {q: i for i, q in enumerate((*report.questions, OTHER))}
    out = []
    for q in sorted(p.by_question, key=lambda q: order.get(q, len(order))):
        left = [i for i, c in enumerate(p.a.cells) if c.question == q]
        right = sorted({i for i, c in enumerate(p.b.cells) if c.question == q}
                       | p.cells_b.get(q, frozenset()))
        title = report.titles.get(q, "")
        heading = escape(f"{q} {title}".strip() if q != OTHER else "outside the questions")
        out.append(f"<h3>{heading} <small>(score {p.by_question[q]:.1f})</small></h3>"
                   f'<div class="side">{_column(p.a, left, p.marks_a)}'
                   f"{_column(p.b, right, p.marks_b)}</div>")
    return out


def render(report: SimilarityReport) -> str:
    students = report.students
    with_code = sum(1 for d in students if d.cells)
    corpus = len(report.documents) - len(students)
    rows = []
    for rank, p in enumerate(report.pairs, 1):
        la, lb = p.shared_lines
        link = (f'<a href="#pair-{rank}">{escape(p.a.name)} and {escape(p.b.name)}</a>'
                if rank <= MAX_DETAILED else f"{escape(p.a.name)} and {escape(p.b.name)}")
        rows.append(f'<tr><td class="num">{rank}</td><td>{link}</td><td>{escape(p.kind)}</td>'
                    f"<td>{escape(p.questions_text)}</td>"
                    f'<td class="num">{la} / {lb}</td><td class="num">{p.score:.1f}</td></tr>')
    table = ("<table><thead><tr><th>#</th><th>pair</th><th>with</th><th>questions (score)</th>"
             "<th>shared lines</th><th>score</th></tr></thead><tbody>" + "".join(rows)
             + "</tbody></table>") if rows else \
        f'<p id="none">No pair shares code scoring {report.min_score:g} or more.</p>'
    sections = []
    for rank, p in enumerate(report.pairs[:MAX_DETAILED], 1):
        la, lb = p.shared_lines
        sections.append(
            f'<section class="pair" id="pair-{rank}"><h2>{rank}. {escape(p.a.name)} and '
            f"{escape(p.b.name)}: similar</h2>"
            f'<p class="sub">score {p.score:.1f}; shared lines: {la} of {p.a.own_lines} '
            f"({escape(p.a.name)}), {lb} of {p.b.own_lines} ({escape(p.b.name)})</p>"
            + "".join(_sections(report, p)) + "</section>")
    more = (f'<p class="sub">Only the first {MAX_DETAILED} pairs are shown side by side; '
            "similarity.csv has them all.</p>") if len(report.pairs) > MAX_DETAILED else ""
    skipped = ("<h2>Not compared</h2><ul>" + "".join(f"<li>{escape(s)}</li>" for s in
                                                   report.skipped) + "</ul>") if report.skipped else ""
    title = escape(f"Similar code: {report.assignment}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{_CSS}</style></head>
<body><main>
<h1>{title}</h1>
<p class="sub">{len(students)} submissions compared ({with_code} with code of their own), {corpus}
corpus files; {len(report.pairs)} similar pairs (score {report.min_score:g} or more).</p>
<p class="note">Each pair below shares code that few others in the class wrote. Similar code is
not proof of copying: students may have worked from the same permitted source, or arrived at the
same answer. The code is shown so that you can judge; the page makes no judgement itself.</p>
<p class="legend">Only each student's own code is compared (given lines are grey).
<mark class="r">shared, rare in the class</mark> <mark class="c">shared, common in the class</mark></p>
{table}
{"".join(sections)}
{more}
{skipped}
<footer>Score: shared fingerprints of normalised code, each weighted by how rare it is in the
class; see docs/similarity.md for what is compared and its limits.</footer>
</main></body></html>
"""


def csv_text(report: SimilarityReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "a", "b", "kind", "score", "shared_lines_a", "shared_lines_b",
                "own_lines_a", "own_lines_b", "questions",
                *[f"score_{q}" for q in (*report.questions, OTHER)]])
    for rank, p in enumerate(report.pairs, 1):
        la, lb = p.shared_lines
        w.writerow([rank, p.a.name, p.b.name, p.kind, f"{p.score:.2f}", la, lb, p.a.own_lines,
                    p.b.own_lines, " ".join(p.questions),
                    *[f"{p.by_question.get(q, 0.0):.2f}" for q in (*report.questions, OTHER)]])
    return buf.getvalue()


def write_outputs(report: SimilarityReport, *, out_dir: Path) -> list[Path]:
    """Write ``similarity.csv`` and ``similarity.html`` into ``out_dir``; return their paths."""
    written = [out_dir / CSV_NAME, out_dir / PAGE_NAME]
    write_text_atomic(written[0], csv_text(report))
    write_text_atomic(written[1], render(report))
    return written
