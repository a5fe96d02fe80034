"""A leaderboard of what the grader measured itself (held-out accuracy on inputs the student
never saw), never of a number the student's code reports.

An assignment declares its entries (``leaderboard:`` in its YAML, LEADERBOARD_SHAPE); each run
copies the measured values into the log (``SubmissionLog.leaderboard``), so Gradescope's
``results.json`` and ``grader report --leaderboard`` read them from the logs alone. The page shows
a pseudonym the student chose (a CSV ``student,pseudonym``) or the rank only: no real name.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Iterable

from grader.errors import InputError, SpecError
from grader.files import read_capped
from grader.logfile import SubmissionLog
from grader.spec import Assignment

# What the grader measures, by name: the key in a check's ``measured`` and the kind of check
# that measures it.
METRICS = {"accuracy": "accuracy"}
ORDERS = ("desc", "asc")
# The shape of assignment.yaml's `leaderboard:` (a list of these): what a JSON Schema of the
# spec must accept.
LEADERBOARD_SHAPE: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "check"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "check": {"type": "string", "description": "an accuracy check's name"},
            "metric": {"enum": list(METRICS), "default": "accuracy"},
            "order": {"enum": list(ORDERS), "default": "desc"},
        },
    },
}
# Gradescope's documented shape of results.json's `leaderboard`
# (https://gradescope-autograders.readthedocs.io/en/latest/leaderboards/).
GRADESCOPE_LEADERBOARD: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "value"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string"},
                       "value": {"type": ["number", "string"]},
                       "order": {"enum": list(ORDERS)}},
    },
}


@dataclass(frozen=True)
class Entry:
    name: str
    check: str
    metric: str = "accuracy"
    order: str = "desc"


def parse(a: Assignment) -> list[Entry]:
    """The assignment's entries, checked against its checks; errors name the file and field."""
    where = f"{a.directory / 'assignment.yaml'}: leaderboard"
    checks = {c.name: c for c in a.checks}
    out = []
    for i, d in enumerate(a.leaderboard):
        here = f"{where}[{i}]"
        unknown = sorted(set(d) - set(LEADERBOARD_SHAPE["items"]["properties"]))
        if unknown:
            raise SpecError(f"{here}.{unknown[0]}: unknown field")
        name, check = d.get("name"), d.get("check")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{here}.name: expected a non-empty string")
        metric, order = d.get("metric", "accuracy"), d.get("order", "desc")
        if metric not in METRICS:
            raise SpecError(f"{here}.metric: expected one of {', '.join(METRICS)} (what the "
                            f"grader measures itself), got {metric!r}")
        if order not in ORDERS:
            raise SpecError(f"{here}.order: expected desc or asc, got {order!r}")
        if check not in checks or checks[check].kind != METRICS[metric]:
            raise SpecError(f"{here}.check: expected the name of an {METRICS[metric]} check, "
                            f"got {check!r}")
        out.append(Entry(name, str(check), metric, order))
    return out


def values(log: SubmissionLog, entries: list[Entry]) -> tuple[dict[str, Any], ...]:
    """The log's ``leaderboard``, in Gradescope's shape; a value not measured is left out."""
    measured = {c.name: c.measured or {} for c in log.checks}
    out = []
    for e in entries:
        value = measured.get(e.check, {}).get(e.metric)
        if value is not None:
            out.append({"name": e.name, "value": value, "order": e.order})
    return tuple(out)


def read_pseudonyms(path: Path) -> dict[str, str]:
    text = read_capped(path, 2**20, what="pseudonyms file").decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    if not {"student", "pseudonym"} <= set(reader.fieldnames or ()):
        raise InputError(f"{path}: line 1: expected the columns student and pseudonym")
    return {(r["student"] or "").strip(): (r["pseudonym"] or "").strip() for r in reader
            if (r["pseudonym"] or "").strip()}


def ranking(logs: Iterable[SubmissionLog]) -> tuple[list[str], list[tuple[int, str, dict[str, Any]]]]:
    """(entry names, [(rank, student, {name: value})]) ranked by the first entry, ties sharing a
    rank; students with no measured value are left out (they have nothing to rank)."""
    rows = [(log.student, {e["name"]: e for e in log.leaderboard}) for log in logs
            if log.leaderboard]
    names: list[str] = []
    for _, by_name in rows:
        names += [n for n in by_name if n not in names]
    if not names:
        return [], []
    first = names[0]
    ranked = [r for r in rows if first in r[1]]
    sign = -1 if ranked and ranked[0][1][first].get("order", "desc") == "desc" else 1
    ranked.sort(key=lambda r: (sign * float(r[1][first]["value"]), r[0]))
    out: list[tuple[int, str, dict[str, Any]]] = []
    for k, (student, by_name) in enumerate(ranked):
        value = by_name[first]["value"]
        rank = k + 1 if k == 0 or ranked[k - 1][1][first]["value"] != value else out[-1][0]
        out.append((rank, student, {n: e["value"] for n, e in by_name.items()}))
    return names, out


def _shown(value: Any, name: str) -> str:
    if isinstance(value, float) and "accuracy" in name.lower():
        return f"{value:.2%}"
    return escape(f"{value:g}" if isinstance(value, float) else str(value))


def page(logs: list[SubmissionLog], *, pseudonyms: dict[str, str] | None = None) -> str:
    """The leaderboard as one self-contained HTML page (no script, every string escaped)."""
    names, rows = ranking(logs)
    title = escape(logs[0].assignment if logs else "")
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = []
    for rank, student, vals in rows:
        who = escape(pseudonyms.get(student, "")) if pseudonyms else ""
        cells = "".join(f"<td>{_shown(vals[n], n) if n in vals else '-'}</td>" for n in names)
        body.append(f"<tr><td>{rank}</td><td>{who}</td>{cells}</tr>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}: leaderboard</title><style>body{{font:16px system-ui,sans-serif;"
            "margin:2rem}} table{{border-collapse:collapse}} td,th{{padding:.3rem .8rem;"
            "border-bottom:1px solid #ddd;text-align:right}}</style></head><body>"
            f"<h1>{title}: leaderboard</h1><p>Measured by the grader on held-out inputs no "
            "student saw.</p><table id=\"leaderboard\"><thead><tr><th>rank</th><th>pseudonym"
            f"</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></body></html>\n")
