"""The students' import path: ``from grader import notebook as checks``.

Kept short on purpose: the template's cells and the course's docs name it. Everything lives
in ``grader.student.checks``.
"""

from grader.student.checks import CheckReport, check, check_all, main

__all__ = ["CheckReport", "check", "check_all", "main"]
