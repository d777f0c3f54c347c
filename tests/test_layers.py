"""Import layers: every import in src/tunelab, deferred ones (inside functions) included,
goes down the layer order below or stays inside its own package, and no modules import
each other in a circle. CONTRIBUTING.md shows the same order."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_imports import find_cycle, modules

# Bottom first. A package may import from packages in lower rows only; two packages in
# one row are independent of each other. The package root (`tunelab`: TunelabError,
# __version__) counts as core, `python -m tunelab` (__main__) as cli.
LAYERS = [
    ["core"],
    ["data"],
    ["backends"],
    ["tasks"],
    ["train", "eval"],
    ["methods"],
    ["run"],
    ["decide"],
    ["report"],
    ["ship", "probes"],
    ["cli"],
]
LAYER = {pkg: i for i, row in enumerate(LAYERS) for pkg in row}


def package(module: str) -> str:
    """`tunelab.run.grid` -> `run`; the root and __main__ as the comment above says."""
    parts = module.split(".")
    if len(parts) == 1:
        return "core"
    return "cli" if parts[1] == "__main__" else parts[1]


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The tunelab modules `name` imports anywhere in its file (module level, inside
    functions, under TYPE_CHECKING): `from a import b` is a.b when that is a module, else a."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # `import tunelab.x.y` of a name inside a module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: imports(n, p, set(mods)) for n, p in mods.items()}


def wrong_way(g: dict[str, set[str]]) -> list[str]:
    """Every import that goes up the layers, or sideways to another package of its row."""
    out = []
    for a, targets in sorted(g.items()):
        for b in sorted(targets):
            pa, pb = package(a), package(b)
            if pa != pb and LAYER[pb] >= LAYER[pa]:
                way = "sideways" if LAYER[pb] == LAYER[pa] else "up"
                out.append(f"{a} ({pa}) imports {b} ({pb}): {way}")
    return out


def test_every_package_has_a_layer():
    assert {package(m) for m in modules()} == set(LAYER)


def test_imports_only_go_down():
    bad = wrong_way(graph())
    assert not bad, "\n".join(bad)


def test_no_import_circle_counting_deferred_imports():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_a_planted_upward_import_and_circle_are_found():
    g = graph()
    assert "tunelab.report.shipped_section" in g["tunelab.report.build"]  # a deferred import
    g["tunelab.core.config"] = g["tunelab.core.config"] | {"tunelab.run.grid"}
    assert any(s.startswith("tunelab.core.config (core) imports tunelab.run.grid") for s in wrong_way(g))
    assert find_cycle(g) is not None  # config -> grid -> ... -> config


def test_contributing_shows_these_layers_and_every_package():
    text = (Path(__file__).parent.parent / "CONTRIBUTING.md").read_text()
    order = " < ".join(", ".join(row) for row in LAYERS)
    assert order in text, f"CONTRIBUTING.md should show the layer order: {order}"
    missing = [p for p in LAYER if f"| `{p}/` |" not in text]
    assert not missing, f"CONTRIBUTING.md's table lacks {missing}"
