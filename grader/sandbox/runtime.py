"""What a notebook finds when it runs: the Jupyter/Colab world the course's notebooks expect.

Runs in the sandbox's runner, after the fork and before the first cell. Students of the course
work on Colab or in Jupyter, and their correct notebooks carry lines that only make sense
there; grading must not fail them for it. Each stand-in does nothing harmful and leaves a note
in the log (``notes``), never an error:

* ``google.colab`` (``output.enable_custom_widget_manager()``, ``drive.mount(...)``,
  ``files.upload()``/``download()``): importable; calls do nothing.
* shell escapes (``!pip install ipympl``, ``x = !ls``) and the ``%pip``/``%conda`` magics,
  ``%%bash``/``%%shell`` cells: not executed (no shell, no network in the sandbox).
* a GPU asked for (``.cuda()``, ``.to("cuda")``, ``device="cuda"`` in ``.to``) on a machine
  without one: the CPU is used. Where the grading machine has a GPU nothing is changed.

Everything else a notebook imports is installed on the grading machine (the assignment's
``requirements``) and, where the assignment lists it in ``preload``, imported warm by the worker.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any, Callable, Sequence

notes: list[str] = []
_said: set[str] = set()


def note(text: str) -> None:
    """Record ``text`` once per submission."""
    if text not in _said:
        _said.add(text)
        notes.append(text)


def take_notes() -> list[str]:
    taken = list(notes)
    notes.clear()
    return taken


# -- google.colab ------------------------------------------------------------------------------

def _does_nothing(qualname: str, result: Any = None) -> Callable[..., Any]:
    def call(*_args: Any, **_kwargs: Any) -> Any:
        note(f"{qualname}() did nothing: the notebook runs on the grader, not on Colab")
        return result() if callable(result) else result

    call.__qualname__ = call.__name__ = qualname.rsplit(".", 1)[-1]
    return call


def _colab_modules() -> dict[str, types.ModuleType]:
    colab = types.ModuleType("google.colab")
    output = types.ModuleType("google.colab.output")
    for name in ("enable_custom_widget_manager", "disable_custom_widget_manager", "clear",
                 "eval_js", "register_callback"):
        setattr(output, name, _does_nothing(f"google.colab.output.{name}"))
    drive = types.ModuleType("google.colab.drive")
    drive.mount = _does_nothing("google.colab.drive.mount")  # type: ignore[attr-defined]
    drive.flush_and_unmount = _does_nothing("google.colab.drive.flush_and_unmount")  # type: ignore[attr-defined]
    files = types.ModuleType("google.colab.files")
    files.upload = _does_nothing("google.colab.files.upload", dict)  # type: ignore[attr-defined]
    files.download = _does_nothing("google.colab.files.download")  # type: ignore[attr-defined]
    colab.output, colab.drive, colab.files = output, drive, files  # type: ignore[attr-defined]
    colab.__path__ = []  # a package, so `from google.colab import output` works
    return {"google.colab": colab, "google.colab.output": output, "google.colab.drive": drive,
            "google.colab.files": files}


class _ColabFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``google.colab*`` (and ``google`` when no real one is installed)."""

    def __init__(self) -> None:
        self.modules = _colab_modules()

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in self.modules:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname == "google.colab")
        if fullname == "google":
            others = [f for f in sys.meta_path if f is not self]
            for finder in others:
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    return None  # a real google namespace (protobuf, …): keep it
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name == "google":
            module = types.ModuleType("google")
            module.__path__ = []
            return module
        return self.modules[spec.name]

    def exec_module(self, module: types.ModuleType) -> None:
        return None


# -- shell escapes and magics -------------------------------------------------------------------

def _not_run(kind: str) -> Callable[..., Any]:
    def skip(line: str = "", cell: str | None = None) -> None:
        shown = " ".join(str(line).split())[:80]
        note(f"not run (no shell while grading): {kind}{shown}")

    return skip


def _install_shell(shell: Any) -> None:
    def system(cmd: str) -> None:
        note(f"not run (no shell while grading): !{' '.join(str(cmd).split())[:80]}")

    def getoutput(cmd: str, split: bool = True, depth: int = 0) -> Any:
        system(cmd)
        from IPython.utils.text import SList

        return SList() if split else ""

    shell.system = system
    shell.system_piped = system
    shell.getoutput = getoutput
    for magic in ("pip", "conda", "mamba", "micromamba", "uv", "sx", "system"):
        shell.register_magic_function(_not_run(f"%{magic} "), "line", magic)
    for magic in ("bash", "sh", "shell", "script", "system"):
        shell.register_magic_function(_not_run(f"%%{magic} "), "cell", magic)


# -- devices ----------------------------------------------------------------------------------

def _wants_cuda(value: Any) -> bool:
    text = str(value) if value is not None else ""
    return text == "cuda" or text.startswith("cuda:")


def _install_cpu_fallback() -> None:
    import torch

    if torch.cuda.is_available():
        return  # a GPU grader: the notebook gets what it asked for
    said = "the notebook asked for a GPU ({}); this grader has none, so it ran on the CPU"
    tensor_to, module_to = torch.Tensor.to, torch.nn.Module.to

    def tensor_cuda(self: torch.Tensor, *_a: Any, **_k: Any) -> torch.Tensor:
        note(said.format(".cuda()"))
        return self

    def module_cuda(self: torch.nn.Module, *_a: Any, **_k: Any) -> torch.nn.Module:
        note(said.format(".cuda()"))
        return self

    def cpu_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if args and _wants_cuda(args[0]):
            note(said.format(f'.to("{args[0]}")'))
            args = ("cpu", *args[1:])
        if _wants_cuda(kwargs.get("device")):
            note(said.format(f'device="{kwargs["device"]}"'))
            kwargs = {**kwargs, "device": "cpu"}
        return args, kwargs

    def to_tensor(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        args, kwargs = cpu_args(args, kwargs)
        return tensor_to(self, *args, **kwargs)

    def to_module(self: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        args, kwargs = cpu_args(args, kwargs)
        return module_to(self, *args, **kwargs)

    torch.Tensor.cuda = tensor_cuda  # type: ignore[method-assign,assignment]
    torch.nn.Module.cuda = module_cuda  # type: ignore[method-assign,assignment]
    torch.Tensor.to = to_tensor  # type: ignore[method-assign,assignment]
    torch.nn.Module.to = to_module  # type: ignore[method-assign,assignment]


def install(shell: Any) -> None:
    """Make the runner's process look like the Jupyter/Colab kernel the notebook was written in."""
    sys.meta_path.insert(0, _ColabFinder())
    _install_shell(shell)
    _install_cpu_fallback()
