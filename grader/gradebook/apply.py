"""One run's gradebook: the deadline rule, extensions, overrides and leaderboard entries, read
and checked once before anything is graded, then applied to every log (fresh or reused).

Applying replaces the log's gradebook fields from scratch (the checks' automatic scores are
never touched), so applying twice gives the same log and an edited CSV takes effect on the
next run, regraded or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from grader.gradebook import deadlines, leaderboard, overrides
from grader.logfile import SubmissionLog
from grader.spec import Assignment


@dataclass(frozen=True)
class Gradebook:
    assignment: Assignment
    rule: deadlines.DeadlineRule | None = None
    extensions: dict[str, datetime | timedelta] = field(default_factory=dict)
    overrides: list[overrides.Override] = field(default_factory=list)
    entries: list[leaderboard.Entry] = field(default_factory=list)
    metadata_dir: Path | None = None  # <student>/submission_metadata.json, from the platform

    @classmethod
    def load(cls, a: Assignment, *, root: Path | None, students: set[str],
             overrides_csv: Path | None = None, extensions_csv: Path | None = None,
             metadata_dir: Path | None = None) -> Gradebook:
        """Everything checked now: a bad line stops the run before any notebook runs."""
        return cls(
            assignment=a, rule=deadlines.rule_for(a, root),
            extensions=(deadlines.read_extensions(extensions_csv, students)
                        if extensions_csv is not None else {}),
            overrides=(overrides.read(overrides_csv, a, students)
                       if overrides_csv is not None else []),
            entries=leaderboard.parse(a), metadata_dir=metadata_dir)

    def apply(self, log: SubmissionLog, folder: Path) -> SubmissionLog:
        submitted = penalty = None
        if self.rule is not None:
            when, source = deadlines.submission_time(folder, self.assignment.notebook,
                                                     self.metadata_dir)
            submitted = {"time": when.isoformat(), "source": source}
            penalty = deadlines.penalty(self.rule, when, self.extensions.get(log.student))
        return replace(log, submitted=submitted, penalty=penalty,
                       overrides=overrides.entries(log, self.overrides),
                       leaderboard=leaderboard.values(log, self.entries))
