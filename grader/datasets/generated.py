"""``kind: generated``: examples made by a seeded function in the assignment's folder.

``data.module`` (a ``.py`` file beside the YAML) defines ``data.function`` (default
``generate``), called as ``function(seed=data.seed, **data.args)``. It returns
``(inputs, labels)`` or ``(inputs, labels, classes)``: a numeric array with one row per
example, one class index per example, and optionally the class labels (else ``data.classes``,
else ``"0"``, ``"1"``, ...). The same seed must give the same examples: the held-out split, the
expected values and the logs' fingerprints all depend on it. The visible part is staged as
``data.file`` (default ``train.npz``: arrays ``inputs``, ``labels``, ``classes``; or a ``.csv``
with columns ``x0``, ``x1``, ... and ``label``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grader.datasets.base import DataSet, Examples, module_file, register
from grader.datasets.plugin import load_module
from grader.datasets.table import check_inputs, write_csv, write_npz_examples
from grader.errors import SpecError
from grader.spec import Assignment


@register("generated")
class GeneratedData(DataSet):
    reads_files = False

    def __init__(self, assignment: Assignment) -> None:
        super().__init__(assignment)
        self.source = module_file(self)

    def load(self, folder: Path | None) -> Examples:
        spec = self.spec
        module = load_module(self.source or module_file(self), yaml=self.yaml)
        function = getattr(module, spec.function, None)
        where = f"{self.yaml}: data.function: {spec.module}:{spec.function}"
        if not callable(function):
            raise SpecError(f"{where}: no such function")
        try:
            made = function(seed=spec.seed, **spec.args)
        except Exception as exc:  # the instructor's code: say where, as for any spec error
            raise SpecError(f"{where}: raised {type(exc).__name__}: {exc}") from exc
        if not (isinstance(made, tuple) and len(made) in (2, 3)):
            raise SpecError(f"{where}: expected it to return (inputs, labels) or "
                            f"(inputs, labels, classes), got {type(made).__name__}")
        inputs = check_inputs(made[0], where)
        labels = np.asarray(made[1])
        if labels.dtype.kind not in "iu" or labels.shape != (len(inputs),):
            raise SpecError(f"{where}: labels: expected one integer class index per input "
                            f"({len(inputs)}), got {labels.dtype} of shape {labels.shape}")
        classes = (tuple(str(c) for c in made[2]) if len(made) == 3 else spec.classes
                   or tuple(str(i) for i in range(int(labels.max()) + 1 if labels.size else 0)))
        try:
            return Examples(inputs, labels, classes)
        except ValueError as exc:
            raise SpecError(f"{where}: {exc}") from None

    def stage(self, visible: Examples, target: Path) -> None:
        path = target / self.spec.file
        if path.suffix == ".csv":
            width = int(np.prod(np.asarray(visible.inputs).shape[1:]))
            write_csv(path, [f"x{i}" for i in range(width)] + ["label"], width, visible)
        else:
            write_npz_examples(path, visible, "inputs", "labels", string_labels=False)
