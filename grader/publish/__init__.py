"""What is published from a course: student template, student package, checks bundles,
the Gradescope autograder."""
