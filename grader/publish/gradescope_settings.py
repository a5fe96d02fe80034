"""The Autograder Settings an assignment needs on Gradescope, said when its zip is built.

Gradescope's defaults (https://gradescope-autograders.readthedocs.io/en/latest/troubleshooting/):
768 MB of memory, half a virtual CPU, a 10-minute timeout that can be raised to 40. An
assignment's limits count CPU seconds; at a fraction of a vCPU each CPU second takes longer on
the wall, so the timeout follows from the budgets divided by the vCPUs.
"""

from __future__ import annotations

import math

from grader.spec import Assignment

DEFAULT_MEMORY_MB = 768
DEFAULT_VCPUS = 0.5
DEFAULT_TIMEOUT_MINUTES = 10
MAX_TIMEOUT_MINUTES = 40
# The grader's own process and its warm worker beside the notebook's sandbox (measured: a
# worker of ~340 MiB, bench/batch_speed.py), and the CPU seconds they take to start.
GRADER_MEMORY_MB = 512
START_CPU_SECONDS = 60.0


def cpu_budget(a: Assignment) -> float:
    """The most CPU seconds grading one submission may take: the notebook, every probe, start."""
    requests = len({c.request_key for c in a.checks}) + len(a.records)
    return a.notebook_seconds + a.probe_seconds * requests + START_CPU_SECONDS


def timeout_minutes(a: Assignment, vcpus: float) -> int:
    return math.ceil(cpu_budget(a) / vcpus / 60)


def settings(a: Assignment) -> list[str]:
    """What to set in the assignment's Autograder Settings, one line each, with why."""
    memory = a.memory_mb + GRADER_MEMORY_MB
    budget = cpu_budget(a)
    lines = [f"Gradescope Autograder Settings for {a.name}:"]
    lines.append(f"  memory: at least {memory} MB (limits.memory_mb {a.memory_mb} for the "
                 f"notebook + {GRADER_MEMORY_MB} for the grader); Gradescope's default of "
                 f"{DEFAULT_MEMORY_MB} MB is "
                 + ("enough" if memory <= DEFAULT_MEMORY_MB else "too little: raise it"))
    fits = [v for v in (0.5, 1.0, 2.0) if timeout_minutes(a, v) <= MAX_TIMEOUT_MINUTES]
    vcpus = max(1.0, fits[0]) if fits else 2.0
    lines.append(f"  CPU: {vcpus:g} vCPU (one torch thread per submission, plus the grader); "
                 f"at Gradescope's default {DEFAULT_VCPUS:g} vCPU each CPU second takes "
                 f"{1 / DEFAULT_VCPUS:g} s")
    need = timeout_minutes(a, vcpus)
    verdict = (f"above Gradescope's maximum of {MAX_TIMEOUT_MINUTES}: lower the limits or add "
               "vCPUs" if need > MAX_TIMEOUT_MINUTES else
               f"the default {DEFAULT_TIMEOUT_MINUTES} is enough" if need <= DEFAULT_TIMEOUT_MINUTES
               else f"raise it from the default {DEFAULT_TIMEOUT_MINUTES}")
    lines.append(f"  timeout: {need} min at {vcpus:g} vCPU ({budget:g} CPU s: notebook "
                 f"{a.notebook_seconds:g} + probes + {START_CPU_SECONDS:g} start-up; "
                 f"{timeout_minutes(a, DEFAULT_VCPUS)} min at {DEFAULT_VCPUS:g} vCPU); {verdict}")
    return lines
