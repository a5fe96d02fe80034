"""Grading: the plan of a run, expected values, one submission's pipeline, scores, runs."""
