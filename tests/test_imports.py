"""Module structure: no import cycle in src/tunelab, and every module imports on its own."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src"
PKG = SRC / "tunelab"


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def top_imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """The import statements at module level (not inside functions) of one file."""
    return [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.Import | ast.ImportFrom)]


def module_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports at module level (not inside functions). `from a
    import b` needs a itself (its __init__ runs, and b is read off it) and, when b is a
    module, a.b too."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in top_imports(path):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        else:
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: module_imports(n, p, set(mods)) for n, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    g = graph()
    assert "tunelab.run.cells" in g["tunelab.run.grid"]
    # config -> grid -> cells -> config
    g["tunelab.core.config"] = g["tunelab.core.config"] | {"tunelab.run.grid"}
    assert find_cycle(g) is not None


def test_no_import_cycle_in_src():
    # (on 902c6ca: tunelab.methods -> tunelab.methods.stages -> tunelab.methods)
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


CHILD = """
import importlib, json, os, sys, traceback
for dep in sys.argv[2].split(","):
    try:
        importlib.import_module(dep)
    except Exception:
        pass  # the tunelab module that needs it reports the error
out = {}
for name in sys.argv[1].split(","):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child that has imported no tunelab module yet
        os.close(r)
        try:
            importlib.import_module(name)
            msg = ""
        except BaseException:
            msg = traceback.format_exc()[-2000:]
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    _, status = os.waitpid(pid, 0)
    out[name] = msg or ("" if status == 0 else f"the import died (wait status {status})")
print(json.dumps(out))
"""


def third_party() -> list[str]:
    """The top-level packages outside tunelab that its modules import at module level."""
    out = set()
    for path in modules().values():
        for node in top_imports(path):
            if isinstance(node, ast.Import):
                out |= {a.name.split(".")[0] for a in node.names}
            elif not node.level and node.module:
                out.add(node.module.split(".")[0])
    return sorted(out - {"tunelab", "__future__"})


ALONE = sorted(n for n in modules() if not n.endswith("__main__"))


@pytest.fixture(scope="module")
def imported_alone() -> dict[str, str]:
    """Each module imported first in its own process: one interpreter imports the
    third-party packages once (torch alone takes seconds), then forks a child per module,
    in which no tunelab module has been imported yet. A new interpreter per module (as
    before) checked the same thing in 203 s of the suite's 568 (this file now: 20 s)."""
    r = subprocess.run([sys.executable, "-c", CHILD, ",".join(ALONE), ",".join(third_party())],
                       capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_third_party_list_is_not_empty():
    assert {"numpy", "typer"} <= set(third_party())


@pytest.mark.slow
@pytest.mark.parametrize("name", ALONE)
def test_every_module_imports_alone(name, imported_alone):
    assert imported_alone[name] == "", imported_alone[name]
