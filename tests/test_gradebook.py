"""The gradebook: deadlines and extensions, overrides, --only, the Canvas export, the feedback
page with a penalty and an override (headless Chromium)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from grader import logfile, spec
from grader.errors import InputError, SpecError
from grader.gradebook import canvas, deadlines, overrides
from grader.gradebook.apply import Gradebook
from grader.logfile import CheckResult, SubmissionLog
from grader.publish import gradescope
from grader.reports import feedback
from tests.conftest import EXAMPLES, ROOT, grader_cli
from tests.test_feedback import chromium, console_errors, needs_chromium

DUE = "2026-12-04T23:59:00-08:00"
RULE = {"due": DUE, "grace_minutes": 30, "penalty_percent_per_day": 10, "max_penalty_percent": 50}


def assignment(tmp_path: Path, **keys: Any) -> spec.Assignment:
    """rnn_and_grad with gradebook keys added to its YAML."""
    folder = tmp_path / "assignments" / "rnn_and_grad"
    shutil.copytree(ROOT / "assignments" / "rnn_and_grad", folder, dirs_exist_ok=True)
    extra = "".join(f"\n{k}: {json.dumps(v)}\n" for k, v in keys.items())  # JSON is YAML
    (folder / "assignment.yaml").write_text((folder / "assignment.yaml").read_text() + extra)
    return spec.load(folder)


def log_of(student: str, *, hidden_score: float = 0.0) -> SubmissionLog:
    return SubmissionLog(
        assignment="rnn_and_grad", student=student, notebook="rnn_and_grad.ipynb",
        notebook_sha256="0" * 64,
        checks=(CheckResult("1A_parameter_count", "1.A", "visible", 2.0, 2.0, True, "passed"),
                CheckResult("1A_forward_relu", "1.A", "hidden", hidden_score, 2.0,
                            hidden_score == 2.0, "failed (hidden check: details are not shown)"),
                CheckResult("1B_forward", "1.B", "visible", 4.0, 4.0, True, "passed")))


def submitted_at(folder: Path, when: str) -> Path:
    """The student's folder, and the platform's metadata saying ``when`` in ``meta_dir``."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = meta_dir(folder) / folder.name
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "submission_metadata.json").write_text(json.dumps({"created_at": when}))
    return folder


def meta_dir(folder: Path) -> Path:
    return folder.parent.parent / "meta"


# -- deadlines --------------------------------------------------------------------------------

def test_within_grace_past_grace_and_with_an_extension(tmp_path: Path) -> None:
    a = assignment(tmp_path, deadline=RULE)
    ext = tmp_path / "extensions.csv"
    ext.write_text("student,days,reason\ncarol,2,illness\n")
    book = Gradebook.load(a, root=tmp_path, students={"alice", "bob", "carol", "dave"},
                          extensions_csv=ext, metadata_dir=tmp_path / "meta")
    times = {"alice": "2026-12-05T08:20:00Z",   # 21 min late: within the 30 min grace
             "bob": "2026-12-05T08:40:00Z",     # 41 min late: one started day, 10%
             "carol": "2026-12-07T07:00:00Z",   # 2 days late, extended by 2 days: on time
             "dave": "2026-12-12T07:59:00Z"}    # 7 days late: capped at 50%
    logs = {s: book.apply(log_of(s), submitted_at(tmp_path / "subs" / s, t))
            for s, t in times.items()}
    rule = ("due 2026-12-04T23:59:00-08:00, 30 min grace; 10% per day late (each started day), "
            "at most 50%")
    alice = logs["alice"]
    assert alice.penalty == {"fraction": 0.0, "late_hours": 0.35,
                             "rule": f"{rule}: 0.35 h late, within grace: no penalty"}
    assert (alice.auto_score, alice.penalty_points, alice.score) == (6.0, 0.0, 6.0)
    assert alice.submitted == {"time": "2026-12-05T08:20:00+00:00",
                               "source": "submission_metadata.json (created_at)"}
    bob = logs["bob"]
    assert bob.penalty is not None and bob.penalty["rule"] == f"{rule}: 0.68 h late, 1 day(s): 10% off"
    assert (bob.penalty_points, bob.score) == (0.6, 5.4)
    assert logs["carol"].penalty is None and logs["carol"].score == 6.0
    dave = logs["dave"]
    assert dave.penalty is not None and dave.penalty["rule"].endswith("7 day(s): 50% off")
    assert (dave.penalty_points, dave.score) == (3.0, 3.0)  # never silently zeroed
    # The log, the summary and results.json say the same.
    on_disk = logfile.read(logfile.write_in(tmp_path / "grades", bob))
    assert on_disk == bob and bob.as_dict()["penalty"]["points"] == 0.6
    logfile.write_summary(tmp_path / "grades", [bob], ["1.A", "1.B"])
    row = next(csv.DictReader((tmp_path / "grades" / "summary.csv").open()))
    assert (row["score"], row["auto_score"], row["penalty"]) == ("5.4", "6.0", "0.6")
    results = gradescope.results_json(bob)
    assert gradescope.validate_results(results) == []
    assert results["score"] == 5.4
    late = [t for t in results["tests"] if t["name"] == "late penalty"]
    assert late == [{"name": "late penalty", "number": "late", "max_score": 0.0, "score": -0.6,
                     "output": f"{rule}: 0.68 h late, 1 day(s): 10% off", "tags": ["late"],
                     "visibility": "visible"}]


def test_submission_time_metadata_then_last_commit_then_file_time(tmp_path: Path) -> None:
    folder = tmp_path / "subs" / "alice"
    folder.mkdir(parents=True)
    # The student's own folder may hold a file of that name: it says nothing.
    (folder / "submission_metadata.json").write_text('{"created_at": "2026-01-01T00:00:00Z"}')
    nb = folder / "rnn_and_grad.ipynb"
    nb.write_text("{}")
    os.utime(nb, (1_800_000_000, 1_800_000_000))
    assert deadlines.submission_time(folder, nb.name) == (
        datetime.fromtimestamp(1_800_000_000, timezone.utc), "file time of rnn_and_grad.ipynb")
    env = {**os.environ, "GIT_COMMITTER_DATE": "2026-12-03T10:00:00+01:00",
           "GIT_AUTHOR_DATE": "2026-12-03T10:00:00+01:00", "GIT_CONFIG_GLOBAL": os.devnull}
    for args in (["init", "-q"], ["add", "."],
                 ["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "hw"]):
        subprocess.run(["git", "-C", str(folder), *args], check=True, env=env)
    when, source = deadlines.submission_time(folder, nb.name)
    assert when == datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
    assert source.startswith("last commit ") and source.endswith(" of the repository")
    submitted_at(folder, "2026-12-01T12:00:00Z")
    assert deadlines.submission_time(folder, nb.name, meta_dir(folder)) == (
        datetime(2026, 12, 1, 12, tzinfo=timezone.utc), "submission_metadata.json (created_at)")


def test_deadline_errors_name_the_file_and_field(tmp_path: Path) -> None:
    a = assignment(tmp_path, deadline={"due": "2026-12-04T23:59:00"})
    with pytest.raises(SpecError, match=r"assignment.yaml: deadline.due: '2026-12-04T23:59:00' "
                                        r"has no UTC offset"):
        deadlines.rule_for(a, tmp_path)
    b = assignment(tmp_path / "b")
    (tmp_path / "b" / "course.yaml").write_text(
        "deadlines:\n  rnn_and_grad: {due: '2026-12-04T23:59:00Z', penalty_percent_per_day: 120}\n")
    with pytest.raises(SpecError, match=r"course.yaml: deadlines.rnn_and_grad.penalty_percent_per_day: "
                                        r"expected a number from 0 to 100, got 120"):
        deadlines.rule_for(b, tmp_path / "b")
    ext = tmp_path / "ext.csv"
    ext.write_text("student,until\nalice,2026-12-06T00:00:00Z\nmallory,2026-12-06T00:00:00Z\n")
    with pytest.raises(InputError, match=r"ext.csv: line 3: unknown student 'mallory'"):
        deadlines.read_extensions(ext, {"alice"})


# -- overrides ----------------------------------------------------------------------------------

def test_an_unknown_student_or_check_is_an_error_naming_the_line(tmp_path: Path) -> None:
    a = spec.find(ROOT, "rnn_and_grad")
    path = tmp_path / "overrides.csv"
    path.write_text("student,target,points,reason,who\nalice,1A_forward_relu,2,regrade,TA\n"
                    "bob,1A_nope,1,typo,TA\n")
    with pytest.raises(InputError, match=r"overrides.csv: line 3: '1A_nope' is neither a check "
                                         r"nor a question of rnn_and_grad"):
        overrides.read(path, a, {"alice", "bob"})
    path.write_text("student,target,points,reason,who\nzed,1.A,1,x,TA\n")
    with pytest.raises(InputError, match=r"overrides.csv: line 2: unknown student 'zed'"):
        overrides.read(path, a, {"alice"})


def late_bob_overridden(tmp_path: Path, reason: str, when: str) -> tuple[Gradebook, SubmissionLog]:
    """bob's log, submitted ``when``, with his hidden check 1A_forward_relu set to 2 points."""
    a = assignment(tmp_path, deadline=RULE)
    path = tmp_path / "overrides.csv"
    path.write_text(f"student,target,points,reason,who\nbob,1A_forward_relu,2,{reason},Ana (TA)\n")
    book = Gradebook.load(a, root=tmp_path, students={"bob"}, overrides_csv=path,
                          metadata_dir=tmp_path / "meta")
    return book, book.apply(log_of("bob"), submitted_at(tmp_path / "subs" / "bob", when))


def test_override_of_a_question_and_a_check_then_the_penalty(tmp_path: Path) -> None:
    book, bob = late_bob_overridden(tmp_path, '"regrade request #4, ReLU was right"',
                                    "2026-12-05T08:40:00Z")
    assert bob.overrides == ({"target": "1A_forward_relu", "question": "1.A", "points": 2.0,
                              "auto": 0.0, "delta": 2.0,
                              "reason": "regrade request #4, ReLU was right", "who": "Ana (TA)",
                              "line": 2},)
    # The penalty is a fraction of the score after the override: 10% of 8.
    assert (bob.auto_score, bob.penalty_points, bob.score) == (6.0, 0.8, 7.2)
    assert bob.questions()["1.A"] == {"score": 4.0, "max_score": 4.0}
    assert book.apply(bob, tmp_path / "subs" / "bob") == bob  # applying again changes nothing
    results = gradescope.results_json(bob)
    assert gradescope.validate_results(results) == []
    row = next(t for t in results["tests"] if t["name"] == "override: 1A_forward_relu")
    assert row["score"] == 2.0 and row["visibility"] == "after_published"
    assert row["output"] == "set to 2 points by Ana (TA): regrade request #4, ReLU was right"
    from rich.console import Console

    from grader.reports import class_report

    console = Console(record=True, width=200)
    class_report.print_overview(class_report.ClassReport([bob], ["1.A", "1.B"]), console)
    text = console.export_text()
    assert "overrides and late penalties" in text
    assert "bob     │     +2 │ override of 1A_forward_relu by Ana (TA): regrade request #4, ReLU was right" in text
    assert "bob     │   -0.8 │ late: due 2026-12-04T23:59:00-08:00" in text


# -- a regrade of one student of eight, with an override on a hidden check -----------------------

@pytest.mark.slow
def test_only_regrades_one_of_eight_and_the_override_survives(graded_examples: dict[str, Any],
                                                              tmp_path: Path) -> None:
    out = tmp_path / "grades"
    shutil.copytree(graded_examples["out"], out)
    students = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
    assert len(students) == 8
    target = "fails_1a_no_recurrence"
    log = logfile.read_in(out, target)
    assert log is not None
    hidden = next(c for c in log.checks if c.visibility == "hidden" and not c.passed)
    (out / "overrides.csv").write_text(
        f"student,target,points,reason,who\n{target},{hidden.name},{hidden.max_score:g},"
        "regrade request,TA\n")
    before = {s: (out / s / logfile.LOG_NAME).read_bytes() for s in students}
    r = grader_cli("run", str(EXAMPLES), "--out", str(out), "--only", target, "-j", "1")
    assert r.returncode == 0, r.stderr
    assert "graded 1 submissions: 0 full marks, 0 with errors, 0 reused" in r.stdout
    after = {s: (out / s / logfile.LOG_NAME).read_bytes() for s in students}
    assert [s for s in students if after[s] != before[s]] == [target]
    regraded = logfile.read_in(out, target)
    assert regraded is not None
    assert regraded.timings != log.timings  # graded again, not reused
    assert [c.as_dict() for c in regraded.checks] == [c.as_dict() for c in log.checks]
    assert [o["target"] for o in regraded.overrides] == [hidden.name]
    assert regraded.score == log.score + hidden.max_score
    rows = {r["student"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert sorted(rows) == students
    assert float(rows[target]["score"]) == regraded.score
    assert rows[target]["overrides"] == f"{hidden.name}: {hidden.max_score:g} (regrade request)"
    page = (out / target / feedback.PAGE_NAME).read_text()
    assert f"<b>Override</b> of <code>{hidden.name}</code>" in page
    bad = grader_cli("run", str(EXAMPLES), "--out", str(out), "--only", "nobody")
    assert bad.returncode == 3 and "--only nobody: no such student folder" in bad.stderr


# -- Canvas ---------------------------------------------------------------------------------------

def test_canvas_csv_lists_a_missing_and_an_extra_student(tmp_path: Path) -> None:
    grades = tmp_path / "grades"
    logfile.write_in(grades, log_of("alice"))
    logfile.write_in(grades, log_of("bob", hidden_score=2.0))
    logfile.write_in(grades, log_of("eve"))  # not on the roster
    roster = tmp_path / "roster.csv"
    roster.write_text("student,id,name,sis_user_id,sis_login_id,section\n"
                      "alice,1001,\"Doe, Alice\",S1,alice@u,Lab 1\n"
                      "bob,1002,Bob Roe,S2,bob@u,Lab 2\n"
                      "carol,1003,Carol Poe,S3,carol@u,Lab 1\n")  # no submission
    target = tmp_path / "canvas.csv"
    r = grader_cli("report", str(grades), "--canvas", str(target), "--roster", str(roster),
                   "--canvas-column", "HW3 (4242)")
    assert r.returncode == 0, r.stderr
    assert target.read_text() == (
        "Student,ID,SIS User ID,SIS Login ID,Section,HW3 (4242)\n"
        "Points Possible,,,,,8\n"
        "\"Doe, Alice\",1001,S1,alice@u,Lab 1,6\n"
        "Bob Roe,1002,S2,bob@u,Lab 2,8\n"
        "Carol Poe,1003,S3,carol@u,Lab 1,\n")
    assert (f"roster mismatch: carol is on {roster} but has no submission (row kept, cell empty)"
            in r.stderr)
    assert (f"roster mismatch: eve has a submission but is not on {roster} (not in the Canvas "
            "file: add them to the roster)") in r.stderr
    result = canvas.export(list(logfile.iter_logs(grades)), canvas.read_roster(roster), column="x")
    assert (result.no_submission, result.not_on_roster) == (("carol",), ("eve",))
    overview = grader_cli("report", str(grades))  # the report says what the gradebook did
    assert "overrides and late penalties" not in overview.stdout
    alone = grader_cli("report", str(grades), "--canvas", str(target))
    assert alone.returncode == 3 and "--canvas and --roster go together" in alone.stderr


# -- the feedback page in a browser ------------------------------------------------------------

@needs_chromium
def test_browser_shows_the_penalty_and_the_override(tmp_path: Path) -> None:
    _, log = late_bob_overridden(tmp_path, "<b>regrade</b> request", "2026-12-06T08:00:00Z")
    out = tmp_path / "grades" / "bob"
    page = feedback.write_page(log, out)
    shot = tmp_path / "feedback-penalty-override.png"  # the test's artifact
    r = chromium("--hide-scrollbars", "--window-size=1000,1400", f"--screenshot={shot}",
                 page.as_uri(), profile=tmp_path / "profile")
    assert r.returncode == 0, r.stderr
    assert console_errors(r.stderr) == []
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and shot.stat().st_size > 10_000
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    assert "<strong>6.4 / 8</strong>" in dom  # (6 + 2) less 20%
    assert ("<li class=\"override\"><b>Override</b> of <code>1A_forward_relu</code>: 2 points "
            "instead of 0 (Ana (TA): &lt;b&gt;regrade&lt;/b&gt; request)</li>") in dom
    assert ("<li class=\"penalty\"><b>Late penalty</b>: -1.6 points (due 2026-12-04T23:59:00-08:00, "
            "30 min grace; 10% per day late (each started day), at most 50%: 24.02 h late, "
            "2 day(s): 20% off)</li>") in dom
    assert "submitted 2026-12-06T08:00:00+00:00 (from submission_metadata.json (created_at))" in dom
    assert "<span>1.A</span><span>4 / 4</span>" in dom
    assert '<span class="tag" title="see the override above">overridden: 2 points</span>' in dom


# -- Gradescope: the settings said up front, and a timeout that is no silent zero ---------------

def test_gradescope_bundle_says_the_settings_the_limits_need() -> None:
    from grader.publish.gradescope_settings import settings

    assert settings(spec.find(ROOT, "rnn_last_name")) == [
        "Gradescope Autograder Settings for rnn_last_name:",
        "  memory: at least 3584 MB (limits.memory_mb 3072 for the notebook + 512 for the "
        "grader); Gradescope's default of 768 MB is too little: raise it",
        "  CPU: 1 vCPU (one torch thread per submission, plus the grader); at Gradescope's "
        "default 0.5 vCPU each CPU second takes 2 s",
        "  timeout: 20 min at 1 vCPU (1180 CPU s: notebook 900 + probes + 60 start-up; 40 min "
        "at 0.5 vCPU); raise it from the default 10"]


FAKE_GRADER = """#!/usr/bin/env bash
# Stands in for grader: records what run_autograder staged, then does what $MODE says.
if [ "$1" = run ]; then
  while [ $# -gt 0 ]; do
    if [ "$1" = --submission-metadata ]; then
      cat "$2/submission/submission_metadata.json" > "$AUTOGRADER_ROOT/seen_metadata"
    fi
    shift
  done
  case "$MODE" in hang) sleep 60 ;; fail) exit 4 ;; esac
fi
"""


@pytest.mark.parametrize("mode", ["hang", "fail"])
def test_run_autograder_leaves_a_message_when_the_platform_stops_it(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "submission_metadata.json").write_text('{"created_at": "forged"}')
    (root / "submission_metadata.json").write_text('{"created_at": "2026-12-05T08:40:00Z"}')
    (root / "run_autograder").write_text(gradescope.RUN_AUTOGRADER)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "grader").write_text(FAKE_GRADER)
    os.chmod(bin_dir / "grader", 0o755)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "MODE": mode, "TMPDIR": str(tmp_path),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    # Gradescope's timeout kills the whole job: here, after 3 s.
    r = subprocess.run(["timeout", "-s", "KILL", "3", "bash", str(root / "run_autograder")],
                       env=env, capture_output=True, text=True, start_new_session=True)
    assert (root / "seen_metadata").read_text() == '{"created_at": "2026-12-05T08:40:00Z"}'
    results = root / "results" / "results.json"
    if mode == "fail":  # the grader could not run: an autograder failure, never a zero
        assert r.returncode == 4 and not results.exists()
        return
    assert r.returncode == -9 or r.returncode == 137
    placeholder = json.loads(results.read_text())
    assert gradescope.validate_results(placeholder) == []
    assert placeholder["score"] == 0.0
    assert placeholder["output"].startswith("The autograder was stopped before grading finished")
