"""Writing an assignment: ``grader new`` (scaffold) and the proof ``grader build`` runs (prove)."""
