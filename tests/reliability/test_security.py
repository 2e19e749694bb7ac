"""What cnnviz's own code may not do, checked on its syntax tree: listen on the network, unpickle,
evaluate text as code, or run a shell. (At run time: test_app_process.py reads the sockets of the live
app and its training process; tests/engine/test_checkpoint.py feeds pickles that must not run;
tests/engine/test_data_download.py refuses every non-HTTPS address.)

The training process is fed through multiprocessing pipes, which pickle the messages between the window
and its own child process; that is the only pickling, and never of a file.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "cnnviz"

FORBIDDEN_MODULES = {
    "pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib",  # unpickling
    "socketserver", "http.server", "xmlrpc.server", "asyncio.base_events", "PySide6.QtNetwork",  # servers
    "ftplib", "telnetlib", "smtplib",  # other protocols
}
FORBIDDEN_CALLS = {
    "eval", "exec", "compile", "__import__", "torch.load", "torch.jit.load", "pickle.load", "pickle.loads",
    "yaml.load", "os.system", "os.popen", "subprocess.Popen", "subprocess.run", "subprocess.call",
    "subprocess.check_output", "asyncio.start_server", "socket.socket", "socket.create_server",
}
FORBIDDEN_METHODS = {"listen", "bind", "serve_forever"}  # any object's: no server of any kind


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _findings(path: Path, root: Path = SOURCE.parent) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    where = path.relative_to(root)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno} imports {a.name}" for a in node.names if a.name in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            found += [f"{where}:{node.lineno} imports {n}" for n in sorted(names & FORBIDDEN_MODULES)]
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            if name in FORBIDDEN_CALLS:
                found.append(f"{where}:{node.lineno} calls {name}")
            elif isinstance(node.func, ast.Attribute) and node.func.attr in FORBIDDEN_METHODS:
                found.append(f"{where}:{node.lineno} calls .{node.func.attr}()")
            elif name.endswith("load") and any(k.arg == "allow_pickle" and not (
                    isinstance(k.value, ast.Constant) and k.value.value is False) for k in node.keywords):
                found.append(f"{where}:{node.lineno} calls {name} with allow_pickle")
    return found


def test_the_scanner_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nfrom http.server import HTTPServer\nimport torch, numpy as np\n"
                   "torch.load('x')\nnp.load('x', allow_pickle=True)\neval('1')\nserver.listen(5)\n")
    found = _findings(bad, tmp_path)
    assert len(found) == 6, found


@pytest.mark.parametrize("path", sorted(SOURCE.rglob("*.py")), ids=lambda p: str(p.relative_to(SOURCE)))
def test_no_listener_no_unpickling_no_eval_no_shell(path):
    assert _findings(path) == []
