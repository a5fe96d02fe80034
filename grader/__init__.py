"""grader: auto-grading harness for deep-learning homework written as Jupyter notebooks."""

__version__ = "0.1.0"
