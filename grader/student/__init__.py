"""What a student runs: the in-notebook checks, ``grader-check`` and its Jupyter kernel."""
