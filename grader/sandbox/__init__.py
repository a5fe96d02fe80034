"""Confinement of student code (Linux only): namespaces, Landlock, rlimits and cgroups, the
warm worker that forks sandboxes, what a notebook finds inside one, and the executors that run
them locally or on Dask. Nothing outside this package loads libc."""
