"""A student notebook opened alone, as on Colab: nothing beside it, no grader installed.

One slow test. The kernel is a fresh venv holding only what Colab has (tests/student_env.py:
``colab_python``). A local package index on 127.0.0.1 (a PEP 503 ``simple/`` folder holding the
template's wheel) stands in for the public one, and a local HTTP server for the assignment's
data URL. The notebooks are the template's, as `grader build` wrote them (setup, check and
submit cells, the visible checks in their metadata), with the students' code filled in:

* the last-name template untouched: the setup cell installs the package by name and fetches
  the data (checked file by file); its 2.A check cell says "not implemented";
* rnn_and_grad with a bug in 1.C: the check cell shows the differences and the reproduction
  snippet; the other check cells PASS; the submit cell writes the upload file.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any, Iterator

import nbformat
import pytest

from grader.publish import check_cells, student_package
from grader.publish.template import read_notebook, solution_blocks
from tests.conftest import ROOT
from tests.student_env import clean_env, colab_python, remove_checks

TEMPLATE = ROOT / "student_template"


def _serve(folder: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


@pytest.fixture()
def servers(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A package index holding the template's wheel, and the last-name data as a zip."""
    root = tmp_path / "www"
    wheel = TEMPLATE / student_package.wheel_name()
    project = root / "simple" / student_package.DIST_NAME
    project.mkdir(parents=True)
    (project / wheel.name).write_bytes(wheel.read_bytes())
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (project / "index.html").write_text(
        f'<!DOCTYPE html><html><body><a href="{wheel.name}#sha256={digest}">{wheel.name}</a>'
        "</body></html>\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # nested, as a course's release archive may be
        for path in sorted((TEMPLATE / "data" / "names").glob("*.txt")):
            zf.writestr(f"release/names/{path.name}", path.read_bytes())
    (root / "names.zip").write_bytes(buf.getvalue())
    url, server = _serve(root)
    yield {"index": f"{url}/simple/", "data": f"{url}/names.zip"}
    server.shutdown()


def _filled(name: str, replace: dict[str, str]) -> nbformat.NotebookNode:
    """The template with the reference's code in every TODO (``replace``: key -> other code)."""
    nb = read_notebook(TEMPLATE / name)
    blocks = solution_blocks(read_notebook(ROOT / "reference" / name), source_name=name)
    for cell in nb.cells:
        for b in blocks:
            stub = (f"{b.indent}# TODO ({b.key}): write your code here\n"
                    f'{b.indent}raise NotImplementedError("{b.key}")')
            code = replace.get(b.key, b.code)
            body = "\n".join(b.indent + line if line.strip() else "" for line in code.splitlines())
            cell.source = cell.source.replace(stub, body)
    return nb


def _run(nb: nbformat.NotebookNode, folder: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    folder.mkdir()
    path = folder / _notebook_name(nb)
    nbformat.write(nb, str(path))
    client = NotebookClient(nb, timeout=600, kernel_name="colab-like", allow_errors=True,
                            resources={"metadata": {"path": str(folder)}})
    client.execute(env=env)
    return nb


def _notebook_name(nb: nbformat.NotebookNode) -> str:
    import yaml

    raw = yaml.safe_load(nb.metadata["grader"]["checks"]["assignment.yaml"])
    return str(raw["notebook"])


def _text(cell: Any) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("display_data", "execute_result"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"ERROR {out.ename}: {out.evalue}")
    return "\n".join(parts)


def _kind(cell: Any) -> tuple[str | None, str | None]:
    meta = cell.metadata.get("grader", {})
    return meta.get("cell"), meta.get("question")


@pytest.mark.slow
def test_a_notebook_alone_installs_checks_fetches_data_and_exports(
        servers: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = colab_python()
    remove_checks(python)
    spec_dir = tmp_path / "kernels" / "colab-like"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "colab-like", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    env = {**clean_env(python), "PIP_INDEX_URL": servers["index"],
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}
    try:
        # The last-name template as given, its setup cell pointing at the local data server.
        last = read_notebook(TEMPLATE / "rnn_last_name.ipynb")
        pins = check_cells.data_pins(
            {p: p.read_bytes() for p in (TEMPLATE / "data" / "names").glob("*.txt")},
            url=servers["data"], dest="data/names", folder=TEMPLATE / "data" / "names")
        assert pins is not None and len(pins["files"]) == 18  # type: ignore[arg-type]
        last.cells[0].source = check_cells.setup_source(
            requirement=student_package.requirement(), wheel=student_package.wheel_name(),
            data=pins)
        ran = _run(last, tmp_path / "colab-last-name", env)
        setup = _text(ran.cells[0])
        assert "ERROR" not in setup, setup
        assert "data: 18 files checked and saved in data/names/" in setup
        assert sorted(p.name for p in (tmp_path / "colab-last-name" / "data" / "names").iterdir()) \
            == sorted(pins["files"])  # type: ignore[arg-type]
        [check_2a] = [c for c in ran.cells if _kind(c) == ("check", "2.A")]
        assert _text(check_2a).splitlines()[:3] == [
            "rnn_last_name 2.A: 0 / 2 points (visible checks only)",
            "FAIL 2.A 2A_letter_to_index (0/2)",
            "     not implemented: your code still raises NotImplementedError (letterToIndex)"]

        # rnn_and_grad, written but for a bug in 1.C; the package is installed now.
        bug = _filled("rnn_and_grad.ipynb", {"1.C loss": "return ((pred - y) ** 2).sum()"})
        folder = tmp_path / "colab-rnn"
        ran = _run(bug, folder, env)
        by_question = {_kind(c)[1]: _text(c) for c in ran.cells if _kind(c)[0] == "check"}
        assert by_question["1.A"].splitlines() == [
            "rnn_and_grad 1.A: 4 / 4 points (visible checks only)",
            "PASS 1.A 1A_parameter_count (1/1)", "PASS 1.A 1A_forward_tanh (3/3)"]
        assert by_question["1.B"].splitlines()[0] == "rnn_and_grad 1.B: 5 / 5 points (visible checks only)"
        c = by_question["1.C"].splitlines()
        assert c[0] == "rnn_and_grad 1.C: 0 / 6 points (visible checks only)"
        assert "FAIL 1.C 1C_loss_all (0/3)" in c
        assert any(line.startswith("     loss: got ") for line in c), c
        assert "         got = checks.reproduce('1C_loss_all')  # the inputs: " \
               "checks.inputs('1C_loss_all')" in c
        assert "         want = checks.expected('1C_loss_all')" in c
        [submit] = [cell for cell in ran.cells if _kind(cell)[0] == "submit"]
        out = _text(submit)
        assert out.splitlines()[0] == "rnn_and_grad: 9 / 15 points (visible checks only)"
        upload = folder / "rnn_and_grad_submission.zip"
        assert f"Upload {upload} to the course's submission page for rnn_and_grad" in out
        # The file on disk is the one written before the run: older than the last check.
        assert "warning: rnn_and_grad.ipynb on disk is older than your last check" in out
        with zipfile.ZipFile(upload) as zf:
            assert sorted(zf.namelist()) == ["rnn_and_grad.attempts.jsonl", "rnn_and_grad.ipynb",
                                             "submission_log.json"]
            log = json.loads(zf.read("submission_log.json"))
            attempts = [json.loads(line) for line in
                        zf.read("rnn_and_grad.attempts.jsonl").decode().splitlines()]
        assert log["score"] == 9 and log["assignment"] == "rnn_and_grad"
        assert [a["question"] for a in attempts] == ["1.A", "1.B", "1.C", "all"]
        assert attempts[2]["score"] == 0 and attempts[0]["score"] == 4
    finally:
        remove_checks(python)
    # The same file, unchanged, through grader check (the sandbox) and grader-check (a kernel):
    # the same visible results, and the generated cells did nothing there (no error of theirs).
    generated = [i for i, cell in enumerate(c for c in bug.cells if c.cell_type == "code")
                 if _kind(cell)[0] is not None]
    for command in (["grader", "check"], ["grader-check"]):
        out = tmp_path / f"out-{command[-1]}"
        r = subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:],
                            str(folder / "rnn_and_grad.ipynb"), "--out", str(out)],
                           capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "without encryption" not in r.stdout + r.stderr
        other = json.loads((out / "submission_log.json").read_text())
        visible = [(c["name"], c["score"], c["message"]) for c in other["checks"]
                   if c["visibility"] == "visible"]
        assert visible == [(c["name"], c["score"], c["message"]) for c in log["checks"]], command
        numbers = [g + 1 for g in generated]  # the log numbers code cells from 1
        assert not [e for e in other["errors"] if e.get("cell") in numbers], command
        statuses = {c["cell"]: c["status"] for c in other["cells"]}
        assert {statuses[n] for n in numbers} == {"ok"}, command
        assert not [c for c in other["cells"] if c["cell"] in numbers and c["stdout"]], command
