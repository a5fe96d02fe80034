"""The students' import path: ``from grader import notebook as checks``.

Kept short on purpose: the template's cells and the course's docs name it. Everything lives
in ``grader.student.checks``; the ``grader-check`` command in ``grader.student.cli``.
"""

from grader.student.checks import (CheckReport, check, check_all, expected, export, fetch_data,
                                   inputs, reproduce)

__all__ = ["CheckReport", "check", "check_all", "expected", "export", "fetch_data", "inputs",
           "reproduce"]
