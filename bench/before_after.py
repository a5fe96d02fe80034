"""Run one bench script in two checkouts, each with its own interpreter, and print their figures
side by side.

    .venv/bin/python bench/before_after.py batch_speed.py --n 60 --slow 12
    .venv/bin/python bench/before_after.py cluster_scaling.py --n 2 --before /tmp/before

``before`` runs ``BEFORE/.venv/bin/python BEFORE/bench/SCRIPT ARGS`` in BEFORE (default
/tmp/before), ``after`` runs this interpreter on this checkout's ``bench/SCRIPT ARGS``; one after
the other (--order), never at once, so neither takes the other's cores. A figure line is one
with a number in it; lines are paired by their label (the text before the first ``:`` or the
first run of spaces), in the after run's order. Each run has a timeout (--timeout). On a shared
machine, the ratios a script prints (measured within one run) are the ones to trust.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABEL = re.compile(r"^\s*(?P<label>[^:\d][^:]*?)(?::\s+|\s{2,})(?P<rest>.*\d.*)$")


def run(name: str, python: Path, tree: Path, script: str, args: list[str], timeout: float
        ) -> tuple[str, float, str]:
    """(stdout, wall seconds, problem or "")."""
    path = tree / "bench" / script
    if not path.is_file():
        return "", 0.0, f"{path} not found"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRADER_ROOT")}
    started = time.perf_counter()
    try:
        proc = subprocess.run([str(python), str(path), *args], cwd=tree, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return out, time.perf_counter() - started, f"timed out after {timeout:g} s"
    wall = time.perf_counter() - started
    problem = ""
    if proc.returncode != 0:
        problem = f"exited {proc.returncode}: {proc.stderr.strip()[-1500:]}"
    return proc.stdout, wall, problem


def figures(stdout: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        m = LABEL.match(line)
        if m:
            label = m["label"].strip()
            while label in found:
                label += "'"
            found[label] = m["rest"].strip()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("script", help="a file in bench/ (both checkouts must have it)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    parser.add_argument("--before", type=Path, default=Path("/tmp/before"))
    parser.add_argument("--order", choices=["before-first", "after-first"], default="before-first")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    ns = parser.parse_args()
    trees = {"before": (ns.before / ".venv" / "bin" / "python", ns.before),
             "after": (Path(sys.executable), ROOT)}
    order = ["before", "after"] if ns.order == "before-first" else ["after", "before"]
    results: dict[str, tuple[str, float, str]] = {}
    for name in order:
        python, tree = trees[name]
        print(f"running {name}: {python} {tree / 'bench' / ns.script} {' '.join(ns.args)}",
              flush=True)
        results[name] = run(name, python, tree, ns.script, ns.args, ns.timeout)
    before, after = figures(results["before"][0]), figures(results["after"][0])
    labels = list(after) + [k for k in before if k not in after]
    width = max([len(k) for k in labels] + [10])
    col = max(30, min(70, (shutil.get_terminal_size((160, 20)).columns - width - 6) // 2))
    print()
    print(f"{ns.script} {' '.join(ns.args)}  (load average {os.getloadavg()[0]:.1f} at the end, "
          f"{os.cpu_count()} cores; a shared machine moves the seconds, less the ratios)")
    print(f"{'':<{width}}  {'before':<{col}}  after")
    for label in labels:
        b, a = before.get(label, "-"), after.get(label, "-")
        print(f"{label:<{width}}  {b[:col]:<{col}}  {a}")
        if len(b) > col:
            print(f"{'':<{width}}  {b[col:]}")
    for name in ("before", "after"):
        out, wall, problem = results[name]
        print(f"{name}: {wall:.0f} s in all" + (f"; PROBLEM: {problem}" if problem else ""))
    sys.exit(1 if any(r[2] for r in results.values()) else 0)


if __name__ == "__main__":
    main()
