"""Exceptions that mean "could not grade".

A wrong answer is never an exception: it is data in the result. These are raised only when the
grader itself cannot do its job, and each knows the exit status the CLI returns for it::

    GraderError                 exit 2   base class; never raised bare
    ├── InputError              exit 3   a path the user gave is missing or unusable
    ├── SpecError               exit 4   an assignment YAML / probes file is invalid
    ├── BuildError              exit 4   solution markers in a reference notebook are wrong
    └── SandboxError            exit 5   a worker or the sandbox could not be started
        └── WorkerLost          exit 5   the warm worker died or stopped answering mid-run

Context (which file, which field) is attached where the error is raised, in the message itself,
so the CLI prints one line and needs no traceback.
"""

from __future__ import annotations


class GraderError(Exception):
    exit_code = 2


class InputError(GraderError):
    exit_code = 3


class SpecError(GraderError):
    exit_code = 4


class BuildError(SpecError):
    exit_code = 4


class SandboxError(GraderError):
    exit_code = 5


class WorkerLost(SandboxError):
    """The warm worker died or made no progress; ``sandbox.local.Worker`` starts a new one and
    grades the submission in flight again, once."""
