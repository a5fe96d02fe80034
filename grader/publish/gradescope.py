"""Gradescope: a submission log as ``results.json``, and the autograder zip that produces it.

Gradescope's contract (https://gradescope-autograders.readthedocs.io/en/latest/specs/): the zip
holds ``setup.sh`` (run once, as root, when the image is built) and ``run_autograder`` (run per
submission, in ``/autograder``), which must write ``/autograder/results/results.json``. Ours
installs this package from the zip with the assignment's ``requirements`` (its YAML's), grades
``/autograder/submission`` with the checks bundle (hidden checks included) and converts the log
with ``grader gradescope-results``.
"""

from __future__ import annotations

import io
import math
import re
import shlex
import stat
import zipfile
from pathlib import Path
from typing import Any, Sequence

import grader
from grader import spec
from grader.errors import InputError
from grader.logfile import SubmissionLog

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
STATUSES = ("passed", "failed")
OUTPUT_FORMATS = ("text", "html", "simple_format", "md", "ansi")
TOP_LEVEL_KEYS = {"score", "execution_time", "output", "output_format", "test_output_format",
                  "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
                  "leaderboard"}
TEST_KEYS = {"score", "max_score", "status", "name", "name_format", "number", "output",
             "output_format", "tags", "visibility", "extra_data"}
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# PyPI's Linux wheels of these are CUDA builds (gigabytes, no GPU to use on Gradescope): an
# assignment's requirement on one of them is installed from the CPU index instead.
CPU_INDEX_PROJECTS = ("torch", "torchvision", "torchaudio")


def _g(x: float) -> str:
    return f"{x:g}"


# Errors that mean no notebook was graded at all: the student's next step is a new upload.
NOT_GRADED = ("missing_notebook", "several_notebooks", "symlink", "invalid_notebook")
_TEMP_PATH = re.compile(r"(?:/tmp|/var/tmp|/autograder)(?:/[^\s:'\"()/,]+)*/")


def student_text(text: str) -> str:
    """``text`` without the grader's temporary or /autograder folders: a student never saw them,
    and a path there tells nothing but how the autograder is laid out."""
    return _TEMP_PATH.sub("", text)


def results_json(entry: SubmissionLog) -> dict[str, Any]:
    """Gradescope's results.json for one submission log.

    Hidden checks say only "hidden check" and are shown, points included, once grades are
    published (``after_published``), as the course's own hidden tests were. Until then nothing a
    student sees counts them: Gradescope totals the visible tests only, and so does ``output``.
    """
    log = entry.as_dict()
    tests: list[dict[str, Any]] = []
    per_question: dict[str, int] = {}
    for c in log.get("checks", []):
        q = str(c.get("question", ""))
        per_question[q] = per_question.get(q, 0) + 1
        hidden = c.get("visibility") == "hidden"
        if hidden:
            output = "hidden check"
        else:
            output = student_text(str(c.get("message", "")))
            if c.get("hint") and not c.get("passed"):
                output += f"\nHint: {c['hint']}"
        tests.append({
            "name": str(c["name"]),
            "number": f"{q}.{per_question[q]}",
            "score": float(c["score"]),
            "max_score": float(c["max_score"]),
            "status": "passed" if c.get("passed") else "failed",
            "output": output,
            "tags": [q],
            "visibility": "after_published" if hidden else "visible",
        })
    errors = [student_text(str(e.get("message", ""))) for e in log.get("errors", [])]
    if errors:
        # Zero points, but a failed row the student sees first: why the other checks lost points.
        tests.insert(0, {"name": "notebook runs without errors", "number": "0.1", "score": 0.0,
                         "max_score": 0.0, "status": "failed", "output": "\n".join(errors),
                         "tags": ["notebook"], "visibility": "visible"})
    tests += _gradebook_rows(log)
    score = float(log.get("score", 0.0))
    visible = [c for c in log.get("checks", []) if c.get("visibility") != "hidden"]
    hidden = len(log.get("checks", [])) - len(visible)
    seen = sum(float(c["score"]) for c in visible)
    seen_max = sum(float(c["max_score"]) for c in visible)
    name = log.get("assignment", "")
    if hidden:
        which = ("The hidden check is shown, with its points," if hidden == 1 else
                 f"The {hidden} hidden checks are shown, with their points,")
        lines = [f"{name}: {_g(seen)} / {_g(seen_max)} points on the visible checks. {which} "
                 "when grades are published."]
    else:
        lines = [f"{name}: {_g(seen)} / {_g(seen_max)} points."]
    unusable = [student_text(str(e.get("message", ""))) for e in log.get("errors", [])
                if e.get("kind") in NOT_GRADED]
    if unusable:
        notebook = log.get("notebook") or "your notebook"
        lines.insert(0, f"No notebook was graded: {'; '.join(unusable)}. Upload {notebook} "
                        "(in Jupyter or Colab: File > Download > .ipynb), then submit again.")
    elif errors:
        lines.append(f"Your notebook did not run cleanly ({len(errors)} error(s)); "
                     "see 'notebook runs without errors' below.")
    if log.get("penalty"):
        lines.append(f"Late: {log['penalty']['rule']}.")
    seconds = float(log.get("timings", {}).get("total_seconds", 0.0))
    board = {"leaderboard": list(log["leaderboard"])} if log.get("leaderboard") else {}
    return {
        **board,
        "score": score,
        "execution_time": int(math.ceil(seconds)) if math.isfinite(seconds) else 0,
        "output": "\n".join(lines),
        "output_format": "text",
        "test_output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def _gradebook_rows(log: dict[str, Any]) -> list[dict[str, Any]]:
    """An override and the late penalty as rows of 0 max points, each with its reason or rule;
    the top-level score already counts them. An override of a hidden check is shown when its
    check is (once grades are published)."""
    hidden = {c["name"] for c in log.get("checks", []) if c.get("visibility") == "hidden"}
    rows = []
    for o in log.get("overrides", []):
        rows.append({"name": f"override: {o['target']}", "number": f"{o['question']}.override",
                     "score": float(o["delta"]), "max_score": 0.0,
                     "output": f"set to {_g(float(o['points']))} points by {o['who']}: "
                               f"{o['reason']}",
                     "tags": [str(o["question"]), "override"],
                     "visibility": "after_published" if o["target"] in hidden else "visible"})
    penalty = log.get("penalty")
    if penalty and float(penalty.get("points", 0)) > 0:
        rows.append({"name": "late penalty", "number": "late", "max_score": 0.0,
                     "score": -float(penalty["points"]), "output": str(penalty["rule"]),
                     "tags": ["late"], "visibility": "visible"})
    return rows


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate_results(d: Any) -> list[str]:
    """Problems with ``d`` as a Gradescope results.json (empty list: none found)."""
    if not isinstance(d, dict):
        return [f"results must be a JSON object, not {type(d).__name__}"]
    problems = [f"unknown top-level key {k!r}" for k in sorted(set(d) - TOP_LEVEL_KEYS)]
    tests = d.get("tests")
    if "score" not in d and not (isinstance(tests, list) and tests
                                 and all(isinstance(t, dict) and "score" in t for t in tests)):
        problems.append("'score' is required unless every test has one")
    if "score" in d and not _is_number(d["score"]):
        problems.append(f"'score' must be a finite number, not {d['score']!r}")
    if "execution_time" in d and not _is_number(d["execution_time"]):
        problems.append("'execution_time' must be a number of seconds")
    if "output" in d and not isinstance(d["output"], str):
        problems.append("'output' must be a string")
    for key in ("output_format", "test_output_format", "test_name_format"):
        if key in d and d[key] not in OUTPUT_FORMATS:
            problems.append(f"'{key}' must be one of {', '.join(OUTPUT_FORMATS)}")
    for key in ("visibility", "stdout_visibility"):
        if key in d and d[key] not in VISIBILITIES:
            problems.append(f"'{key}' must be one of {', '.join(VISIBILITIES)}, not {d[key]!r}")
    if "extra_data" in d and not isinstance(d["extra_data"], dict):
        problems.append("'extra_data' must be an object")
    if "leaderboard" in d:
        problems += _leaderboard_problems(d["leaderboard"])
    if tests is None:
        return problems
    if not isinstance(tests, list):
        return problems + ["'tests' must be a list"]
    for i, t in enumerate(tests):
        where = f"tests[{i}]"
        if not isinstance(t, dict):
            problems.append(f"{where} must be an object")
            continue
        problems += [f"{where}: unknown key {k!r}" for k in sorted(set(t) - TEST_KEYS)]
        for key in ("name", "output", "number"):
            if key in t and not isinstance(t[key], str):
                problems.append(f"{where}.{key} must be a string")
        if "name" not in t:
            problems.append(f"{where}.name is required")
        for key in ("score", "max_score"):
            if key not in t:
                problems.append(f"{where}.{key} is required")
            elif not _is_number(t[key]):
                problems.append(f"{where}.{key} must be a finite number, not {t[key]!r}")
        if "status" in t and t["status"] not in STATUSES:
            problems.append(f"{where}.status must be 'passed' or 'failed'")
        if "visibility" in t and t["visibility"] not in VISIBILITIES:
            problems.append(f"{where}.visibility must be one of {', '.join(VISIBILITIES)}, "
                            f"not {t['visibility']!r}")
        if "tags" in t and not (isinstance(t["tags"], list) and all(isinstance(x, str) for x in t["tags"])):
            problems.append(f"{where}.tags must be a list of strings")
        if "output_format" in t and t["output_format"] not in OUTPUT_FORMATS:
            problems.append(f"{where}.output_format must be one of {', '.join(OUTPUT_FORMATS)}")
    return problems


def _leaderboard_problems(board: Any) -> list[str]:
    """Against the documented shape (gradebook.leaderboard.GRADESCOPE_LEADERBOARD)."""
    import jsonschema

    from grader.gradebook.leaderboard import GRADESCOPE_LEADERBOARD

    def where(path: Any) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)

    validator = jsonschema.Draft202012Validator(GRADESCOPE_LEADERBOARD)
    return [f"leaderboard{where(e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(board)]


# -- the autograder zip -----------------------------------------------------------------------

MIN_PYTHON = (3, 10)  # pyproject's requires-python

def _project(requirement: str) -> str:
    """The normalised project name a pip requirement string starts with (PEP 503)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    return re.sub(r"[-_.]+", "-", match.group(0)).lower() if match else ""


def setup_sh(requirements: Sequence[str]) -> str:
    """setup.sh for an assignment whose notebook needs ``requirements`` (its YAML's)."""
    cpu = [r for r in requirements if _project(r) in CPU_INDEX_PROJECTS]
    install_cpu = ""
    if cpu:
        install_cpu = ("# CPU wheels first, so installing the grader does not pull torch's CUDA "
                       "build from PyPI.\n"
                       f'"$ROOT/venv/bin/python" -m pip install {_quoted(cpu)} '
                       '--index-url "$TORCH_INDEX"\n')
    # One resolver run for the grader and the notebook's requirements: a pin that conflicts
    # with the grader's own fails the build here, not a student's submission later.
    rest = f" {_quoted(requirements)}" if requirements else ""
    # Not str.format: the script's own ${...} would read as fields.
    return _SETUP_SH.replace("{install_cpu}", install_cpu).replace("{rest}", rest)


def _quoted(requirements: Sequence[str]) -> str:
    return " ".join(shlex.quote(r) for r in requirements)


_SETUP_SH = f"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (made by
# `grader gradescope-bundle`). Everything goes into a venv so the image's python is untouched.
set -euo pipefail
SOURCE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
TORCH_INDEX="${{GRADER_TORCH_INDEX:-{TORCH_INDEX}}}"
# The image's own Python: 3.10 on Gradescope's Ubuntu 22.04 base image, 3.12 on 24.04; the
# grader needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer. GRADER_PYTHON chooses another one.
PYTHON=""
for candidate in ${{GRADER_PYTHON:-}} python3 python3.13 python3.12 python3.11 python3.10; do
  if command -v "$candidate" >/dev/null 2>&1 \\
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < {MIN_PYTHON!r})' 2>/dev/null; then
    PYTHON="$(command -v "$candidate")"
    break
  fi
done
if [ -z "$PYTHON" ]; then
  echo "setup.sh: no Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]} on this image; choose Gradescope's Ubuntu 22.04 or 24.04 base image" >&2
  exit 1
fi
echo "setup.sh: using $PYTHON ($("$PYTHON" --version 2>&1))"
if ! "$PYTHON" -m venv "$ROOT/venv" >/dev/null 2>&1; then
  # Ubuntu ships venv's pip bootstrap apart from Python itself: python3.X-venv.
  rm -rf "$ROOT/venv"
  version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "python$version-venv"
  "$PYTHON" -m venv "$ROOT/venv"
fi
"$ROOT/venv/bin/python" -m pip install --upgrade pip
{{install_cpu}}"$ROOT/venv/bin/python" -m pip install "$SOURCE/grader_src"{{rest}}
"$ROOT/venv/bin/grader" --version
# Student code runs as this user, never as root (docs/security.md); made now, while the image
# is built, so a read-only /etc at grading time changes nothing.
id grader-sandbox >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
  --shell /usr/sbin/nologin grader-sandbox || echo "setup.sh: could not create the user grader-sandbox; student code will run as nobody"
# What confinement this image allows, for the instructor's build log (a container may lack
# namespaces or cgroups; each submission's log records the same report).
"$ROOT/venv/bin/grader" sandbox || echo "setup.sh: some sandbox protections are off on this image (see above)"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, in /autograder (made by `grader gradescope-bundle`).
# A wrong or crashing notebook is a graded result; only a grader that cannot run exits non-zero,
# which Gradescope shows as an autograder failure instead of a silent zero.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
if [ -x "$ROOT/venv/bin/grader" ]; then PATH="$ROOT/venv/bin:$PATH"; fi
# Student code runs as an unprivileged uid (grader run drops to it as root; without that it
# refuses): the checks (hidden expected values) and the data's source stay root's alone.
# The venv beside them stays readable: the sandbox runs Python from it.
chmod 700 "$SOURCE" 2>/dev/null || true
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STUDENT="$WORK/submissions/submission"
mkdir -p "$STUDENT" "$ROOT/results"
# Written first and replaced when grading ends: a platform timeout or kill leaves this message
# (and the settings to change), never a silent zero.
cat > "$ROOT/results/results.json" <<'JSON'
{"score": 0.0, "output": "The autograder was stopped before grading finished (Gradescope's timeout or memory limit). Your instructor can raise them in the assignment's Autograder Settings, as `grader gradescope-bundle` prints.", "output_format": "text", "visibility": "visible", "tests": []}
JSON
# -R copies links as links: `grader run` refuses them, never reading a file they point at.
# Uploads arrive renamed ("hw1 (2).ipynb") or in a folder: `grader run` chooses the
# notebook by the same rule as everywhere (submission.choose_notebook) and says so in the log.
cp -R "$ROOT/submission/." "$STUDENT/"
# Gradescope's own record of when this was submitted (a deadline's clock), beside the upload,
# never in it: a file the upload holds cannot choose its own time.
META=()
if [ -f "$ROOT/submission_metadata.json" ]; then
  mkdir -p "$WORK/metadata/submission"
  cp "$ROOT/submission_metadata.json" "$WORK/metadata/submission/"
  META=(--submission-metadata "$WORK/metadata")
fi
DATA=()
if [ -d "$SOURCE/data" ]; then DATA=(--data "$SOURCE/data"); fi
# A grader that cannot run leaves no results.json (an autograder failure, not a zero).
grader run "$WORK/submissions" --checks "$SOURCE/checks" --out "$WORK/grades" --jobs 1 "${DATA[@]}" "${META[@]}" \
  || { status=$?; rm -f "$ROOT/results/results.json"; exit "$status"; }
grader gradescope-results "$WORK/grades/submission" --out "$ROOT/results/results.json"
"""


def _source_root() -> Path:
    """The checkout this grader runs from: the zip carries it so setup.sh can install it."""
    package = Path(grader.__file__).resolve().parent
    root = package.parent
    if not (root / "pyproject.toml").is_file():
        raise InputError(f"{package}: not a source checkout (no pyproject.toml beside it); "
                         "run gradescope-bundle from a clone of the grader")
    return root


def build_zip(a: spec.Assignment, *, root: Path, data_dir: Path | None) -> bytes:
    """The autograder zip for ``a``: scripts, checks (hidden ones too), grader source, data."""
    from grader import datasets
    from grader.grading.plan import limits_for, warm_up_for
    from grader.publish.bundle import checks_bundle
    from grader.sandbox.local import Worker

    data_folder = None
    if a.data is not None:
        data_folder = datasets.locate(a, data_dir)
    dest = Path("checks")
    with Worker(limits=limits_for(a), **warm_up_for([a])) as worker:
        checks = checks_bundle(a, root=root, dest=dest, executor=worker, data_dir=data_folder,
                               include_hidden=True)
    return write_zip(bundle_files(a, checks=checks, checks_dest=dest, data_folder=data_folder))


def bundle_files(a: spec.Assignment, *, checks: dict[Path, bytes], checks_dest: Path,
                 data_folder: Path | None) -> dict[str, bytes]:
    """Zip member name -> content. ``checks`` is ``publish.bundle.checks_bundle``'s output."""
    files: dict[str, bytes] = {
        "setup.sh": setup_sh(a.requirements).encode(),
        "run_autograder": RUN_AUTOGRADER.encode(),
    }
    for path, content in checks.items():
        files["checks/" + path.relative_to(checks_dest).as_posix()] = content
    src = _source_root()
    for name in ("pyproject.toml", "README.md", "LICENSE"):  # pyproject's license-files
        if (src / name).is_file():
            files[f"grader_src/{name}"] = (src / name).read_bytes()
    # The package's Python files and its data (the assignment.yaml schema the loader reads).
    package_files = [*(src / "grader").rglob("*.py"), *(src / "grader" / "schema").glob("*.json")]
    for py in sorted(package_files):
        if "__pycache__" not in py.parts:
            files[f"grader_src/grader/{py.relative_to(src / 'grader').as_posix()}"] = py.read_bytes()
    if data_folder is not None:
        if not data_folder.is_dir():
            raise InputError(f"{data_folder}: no such data folder")
        for p in sorted(data_folder.rglob("*")):
            if p.is_file() and not p.is_symlink():
                files["data/" + p.relative_to(data_folder).as_posix()] = p.read_bytes()
    return files


def write_zip(files: dict[str, bytes]) -> bytes:
    """A reproducible zip (fixed timestamps, members in sorted order); the two scripts are
    executable."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            executable = name in ("setup.sh", "run_autograder")
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])
    return buf.getvalue()
