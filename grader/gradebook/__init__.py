"""The instructor's gradebook: deadlines and extensions, overrides, a measured leaderboard, and
the LMS export, all applied on top of the checks' automatic scores (``docs/gradebook.md``)."""
