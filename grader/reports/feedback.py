"""Feedback a student wants to read: one self-contained ``feedback.html`` per graded submission.

The page inlines its CSS and the student's own plots (as ``data:`` URIs), so it can be mailed,
uploaded as a CI artifact or opened from a zip without anything beside it. Every string on it may
come from student code (exception messages, printed values), so all of it goes through
``html.escape``; the page has no scripts.
"""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path
from typing import Any, Iterable


from grader import logfile
from grader.files import FIGURE_NAME, atomic_write_text
from grader.logfile import SubmissionLog

PAGE_NAME = "feedback.html"
# Figure paths are written by the grader itself (grading.pipeline._cells); anything else in a log is ignored
# rather than read, so a tampered log cannot inline arbitrary files.
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_FIGURE_BYTES = 4 * 2**20
MAX_INLINED_BYTES = 16 * 2**20

_CSS = """
body { font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
       background: #f6f7f9; margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; }
.sub { color: #5b6475; margin: .25rem 0 0; }
.score { display: flex; align-items: center; gap: 1rem; margin: 1rem 0; }
.score strong { font-size: 2rem; }
.bar { flex: 1; height: .8rem; background: #e2e5ea; border-radius: .4rem; overflow: hidden; }
.bar span { display: block; height: 100%; background: #2f855a; }
.note { background: #fffbea; border: 1px solid #f0d88a; padding: .6rem .9rem; border-radius: .4rem; }
.errors { background: #fff1f0; border: 1px solid #f3b4ae; padding: .6rem .9rem; border-radius: .4rem; }
.errors li { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9rem; }
section.q { background: #fff; border: 1px solid #dfe3e8; border-radius: .5rem; padding: .25rem 1rem 1rem;
            margin: 1rem 0; }
.q h2 { display: flex; justify-content: space-between; margin: .75rem 0 .5rem; }
.check { border-top: 1px solid #eef0f3; padding: .6rem 0; }
.check header { display: flex; gap: .75rem; align-items: baseline; }
.check .pts { margin-left: auto; color: #5b6475; white-space: nowrap; }
.badge { font-weight: 700; font-size: .8rem; padding: .1rem .45rem; border-radius: .3rem; color: #fff; }
.tag { font-size: .75rem; color: #5b6475; border: 1px solid #cfd4dc; border-radius: .3rem;
       padding: 0 .35rem; }
.pass { background: #2f855a; } .fail { background: #c53030; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { background: #f3f4f6; padding: .6rem .8rem; border-radius: .35rem; overflow-x: auto;
      font-size: .85rem; margin: .5rem 0 0; }
.hint { margin: .4rem 0 0; } .hint b { color: #975a16; }
figure { background: #fff; border: 1px solid #dfe3e8; border-radius: .5rem; margin: 1rem 0;
         padding: .75rem; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: #5b6475; font-size: .9rem; margin-top: .4rem; text-align: center; }
footer { color: #7a8394; font-size: .8rem; margin-top: 2rem; }
"""


def _num(x: Any) -> str:
    return f"{float(x):g}"


def figures(log: dict[str, Any], log_dir: Path) -> list[tuple[int, str, bytes]]:
    """(cell, name, PNG bytes) for each plot the notebook drew, in notebook order."""
    found: list[tuple[int, str, bytes]] = []
    total = 0
    for cell in log.get("cells", []):
        for name in cell.get("figures", []):
            if not isinstance(name, str) or not FIGURE_NAME.fullmatch(name):
                continue
            path = log_dir / name
            try:
                if path.is_symlink() or path.stat().st_size > MAX_FIGURE_BYTES:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if not data.startswith(_PNG_MAGIC) or total + len(data) > MAX_INLINED_BYTES:
                continue
            total += len(data)
            found.append((int(cell.get("cell", 0)), name, data))
    return found


def _check_html(c: dict[str, Any], overridden: dict[str, float] | None = None) -> str:
    passed = bool(c.get("passed"))
    badge = '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'
    hidden = c.get("visibility") == "hidden"
    tag = '<span class="tag" title="runs on inputs you have not seen">hidden</span>' if hidden else ""
    if overridden and c["name"] in overridden:  # the reason is in the adjustments above
        tag += (f'<span class="tag" title="see the override above">overridden: '
                f'{_num(overridden[c["name"]])} points</span>')
    parts = [f'<div class="check" id="check-{escape(str(c["name"]))}"><header>{badge}'
             f'<code>{escape(str(c["name"]))}</code>{tag}'
             f'<span class="pts">{_num(c["score"])} / {_num(c["max_score"])} points</span></header>']
    if hidden and not passed:
        parts.append('<p class="sub">A hidden check runs your code on inputs you have not seen, '
                     'so its details are not shown. The visible checks of this question are the '
                     'place to start.</p>')
    elif not passed:
        parts.append(f"<pre>{escape(str(c.get('message', '')))}</pre>")
        if c.get("hint"):
            parts.append(f'<p class="hint"><b>Hint:</b> {escape(str(c["hint"]))}</p>')
    parts.append("</div>")
    return "".join(parts)


def _adjustments_html(log: dict[str, Any]) -> list[str]:
    """The instructor's overrides and the late penalty, each with its reason or rule
    (grader.gradebook); the score above already counts them."""
    items = []
    for o in log.get("overrides", []):
        items.append(f'<li class="override"><b>Override</b> of <code>{escape(str(o["target"]))}'
                     f'</code>: {_num(o["points"])} points instead of {_num(o["auto"])} '
                     f'({escape(str(o["who"]))}: {escape(str(o["reason"]))})</li>')
    penalty = log.get("penalty")
    if penalty:
        items.append(f'<li class="penalty"><b>Late penalty</b>: -{_num(penalty["points"])} '
                     f'points ({escape(str(penalty["rule"]))})</li>')
    if not items:
        return []
    submitted = log.get("submitted") or {}
    when = (f'<p class="sub">submitted {escape(str(submitted["time"]))} (from '
            f'{escape(str(submitted["source"]))})</p>' if submitted else "")
    return [f'<div class="note" id="adjustments"><p>{_num(log.get("auto_score", 0))} points '
            f'from the checks, then:</p><ul>{"".join(items)}</ul>{when}</div>']


def render_page(entry: SubmissionLog, log_dir: Path, *, titles: dict[str, str] | None = None,
                visible_only: bool = False) -> str:
    """The whole page as one HTML string; ``log_dir`` holds the log's ``figures/``."""
    log = entry.as_dict()
    titles = titles or {}
    score, max_score = float(log.get("score", 0)), float(log.get("max_score", 0))
    pct = 100.0 * score / max_score if max_score > 0 else 0.0
    student, assignment = escape(str(log.get("student", ""))), escape(str(log.get("assignment", "")))
    body = [f"<h1>{assignment}: feedback for {student}</h1>",
            f'<p class="sub">notebook <code>{escape(str(log.get("notebook", "")))}</code></p>',
            f'<div class="score" id="score"><strong>{_num(score)} / {_num(max_score)}</strong>'
            f'<div class="bar" title="{pct:.0f}%"><span style="width:{pct:.1f}%"></span></div></div>']
    body += _adjustments_html(log)
    failed = [c for c in log.get("checks", []) if not c.get("passed")]
    if failed:
        links = ", ".join(f'<a href="#check-{escape(str(c["name"]))}">{escape(str(c["name"]))}</a>'
                          for c in failed)
        body.append(f'<p id="failed">{len(failed)} of {len(log.get("checks", []))} checks '
                    f"failed: {links}.</p>")
    elif log.get("checks"):
        body.append('<p id="failed">Every check passed.</p>')
    if visible_only:
        body.append('<p class="note">Visible checks only. Hidden checks, on inputs you have not '
                    'seen, are run when your work is graded.</p>')
    errors = log.get("errors", [])
    if errors:
        items = "".join(f"<li>{escape(str(e.get('message', '')))}</li>" for e in errors)
        body.append('<h2>Your notebook did not run cleanly</h2>'
                    f'<div class="errors" id="errors"><ul>{items}</ul>'
                    '<p>Checks that use the code of these cells cannot pass until the cells run.</p></div>')
    by_question: dict[str, list[dict[str, Any]]] = {}
    for c in log.get("checks", []):
        by_question.setdefault(str(c.get("question", "")), []).append(c)
    per_q = log.get("questions", {})
    overridden = {str(o["target"]): float(o["points"]) for o in log.get("overrides", [])}
    for q, checks in by_question.items():
        got = per_q.get(q, {}).get("score", sum(float(c["score"]) for c in checks))
        out_of = per_q.get(q, {}).get("max_score", sum(float(c["max_score"]) for c in checks))
        title = f" {escape(titles[q])}" if q in titles else ""
        body.append(f'<section class="q"><h2><span>{escape(q)}{title}</span>'
                    f'<span>{_num(got)} / {_num(out_of)}</span></h2>'
                    + "".join(_check_html(c, overridden) for c in checks) + "</section>")
    plots = figures(log, log_dir)
    body.append('<h2 id="plots">Your plots</h2>')
    if not plots:
        body.append('<p class="sub">Your notebook drew no plots that could be collected.</p>')
    for k, (cell, name, data) in enumerate(plots, start=1):
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        body.append(f'<figure><img src="{uri}" alt="plot {k} of {len(plots)}, from code cell {cell}">'
                    f"<figcaption>code cell {cell} ({escape(name.split('/')[-1])})</figcaption></figure>")
    versions = log.get("versions", {})
    body.append(f"<footer>graded by grader {escape(str(versions.get('grader', '')))} "
                f"(torch {escape(str(versions.get('torch', '')))}); notebook sha256 "
                f"{escape(str(log.get('notebook_sha256') or '-'))}</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{assignment}: {student} ({_num(score)} / {_num(max_score)})</title>"
            f"<style>{_CSS}</style></head>\n<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n")


def write_page(log: SubmissionLog, log_dir: Path, **kwargs: Any) -> Path:
    path = log_dir / PAGE_NAME
    atomic_write_text(path, render_page(log, log_dir, **kwargs))
    return path


def write_pages(out_dir: Path, logs: Iterable[SubmissionLog], *,
                titles: dict[str, str] | None = None) -> list[Path]:
    """A page beside each student's log under ``out_dir`` (what ``grader run`` calls)."""
    return [write_page(log, out_dir / log.student, titles=titles) for log in logs
            if (out_dir / log.student / logfile.LOG_NAME).is_file()]


# -- markdown, for CI summaries --------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`\[\]|])")


def md(text: object, limit: int = 200) -> str:
    """One table-safe markdown line; text from student code cannot add markup or cells."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def markdown_summary(entry: SubmissionLog, *, visible_only: bool = False) -> str:
    """The score line, a table of checks and the errors, as GitHub renders in a job summary."""
    log = entry.as_dict()
    note = " (visible checks only)" if visible_only else ""
    lines = [f"### {md(log['assignment'])}: {_num(log['score'])} / {_num(log['max_score'])} points{note}",
             "", "| question | check | result | points |", "|---|---|---|---|"]
    for c in log.get("checks", []):
        lines.append(f"| {md(c['question'])} | {md(c['name'])} | {'PASS' if c['passed'] else 'FAIL'} "
                     f"| {_num(c['score'])} / {_num(c['max_score'])} |")
    errors = log.get("errors", [])
    if errors:
        lines += ["", "Errors:", ""] + [f"- {md(e.get('message', ''))}" for e in errors]
    return "\n".join(lines) + "\n\n"
