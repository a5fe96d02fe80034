"""``kind: plugin``: the assignment's own data set, a ``DataSet`` subclass in its folder.

``data.module`` is a ``.py`` file beside the YAML and ``data.class`` the subclass of
``grader.datasets.base.DataSet`` it defines; ``data.options`` (a mapping) is the plug-in's own,
read from ``self.spec.options``. The plug-in gets the common keys (``env``, ``url``, ``sha256``,
``path``, ``stage_as``, the held-out split) handled by the base class, so it implements only
how its files are read (``recognises``, ``checksum``, ``load``) and written (``stage``).

Plug-ins and generators are the instructor's code and run in the grader's process, never in
the sandbox; the bundles ship them beside the spec they belong to.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from grader.datasets.base import DataSet, module_file, register
from grader.errors import SpecError
from grader.spec import Assignment


def load_module(path: Path, *, yaml: Path | None = None) -> ModuleType:
    """Import the Python file ``path``, once per content: the same file read twice (the
    assignment and a bundle's copy) is one module, an edited one a new one."""
    content = path.read_bytes()
    name = "grader_data_" + hashlib.sha256(str(path.resolve()).encode() + content).hexdigest()[:16]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a class's module up there
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        where = f"{yaml}: data.module: " if yaml is not None else ""
        raise SpecError(f"{where}{path} could not be imported ({type(exc).__name__}: {exc})") from exc
    return module


@register("plugin")
def plugin(assignment: Assignment) -> DataSet:
    assert assignment.data is not None
    yaml = assignment.directory / "assignment.yaml"
    path = assignment.directory / assignment.data.module
    if not path.is_file():
        raise SpecError(f"{yaml}: data.module: {path} does not exist")
    module = load_module(path, yaml=yaml)
    cls = getattr(module, assignment.data.class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, DataSet)):
        raise SpecError(f"{yaml}: data.class: {path.name} defines no DataSet subclass "
                        f"{assignment.data.class_name!r}")
    try:
        dataset = cls(assignment)
    except TypeError as exc:  # e.g. load or stage left abstract
        raise SpecError(f"{yaml}: data.class: {cls.__name__} cannot be made ({exc})") from None
    dataset.source = module_file(dataset)
    return dataset
