"""``assignment.yaml`` against its JSON Schema (``grader/schema/assignment.schema.json``).

The schema is the one list of the keys a spec may have, at every level; editors read the same
file through the ``# yaml-language-server: $schema=...`` line ``grader new`` writes. Problems
come back as ``(field path, what is wrong)``, the path written as ``grader.spec`` writes it
(``checks[3].tolerance.rtol``), an unknown key with the closest known one when there is one.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "assignment.schema.json"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def field_path(parts: Iterable[object]) -> str:
    """``["checks", 3, "tolerance"]`` -> ``checks[3].tolerance``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def unknown_key(key: str, known: Iterable[str]) -> str:
    """What to say of a key the schema does not list: the likely intended one, if any."""
    match = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    if match:
        return f"`{key}`: unknown key; did you mean `{match[0]}`?"
    return "unknown field"


def problems(raw: object) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(unknown keys, other problems)`` of a parsed YAML document, each in document order.

    Unknown keys come apart: the loader reports them first (a typo explains every later
    error), and the rest only after its own, more specific checks."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    unknown: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    for error in sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path]):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            for key in error.instance:
                if key not in known:
                    where = field_path([*error.absolute_path, str(key)])
                    unknown.append((where, unknown_key(str(key), known)))
        else:
            other.append((field_path(error.absolute_path) or "top level", error.message))
    return unknown, other
