"""The package's layers, read from its imports: no cycles, no import that runs back up, few modules
at the top, short files. ``python tests/test_layout.py`` prints the counts.

Layers, lowest first; a module imports only from its own layer or below:
errors and small utilities (``gouache/*.py``) < model < store < data < sampling < training
< evaluate, serve, the Python API < cli.
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gouache"
LAYERS = {"model": 1, "store": 2, "data": 3, "sampling": 4, "training": 5, "evaluate": 6, "serve": 6, "web": 6, "cli": 7}
TOP_LEVEL = {"__init__": 6, "api": 6, "__main__": 7}  # other modules directly in gouache/ are utilities (0)
MAX_TOP_MODULES = 8
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The gouache modules that ``name`` imports, anywhere in the file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from gouache import distributed` imports a module, not the package
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    if path.name == "__init__.py":  # a package re-exporting its own modules is not a cycle
        found = {t for t in found if not t.startswith(name + ".")}
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def layer(name: str) -> int:
    parts = name.split(".")
    if len(parts) == 1:
        return TOP_LEVEL["__init__"]
    return LAYERS.get(parts[1], TOP_LEVEL.get(parts[1], 0))


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    return out


def upward(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, t) for m, ts in g.items() for t in ts if layer(t) > layer(m))


def top_modules() -> list[str]:
    return [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]


def long_files() -> list[tuple[str, int]]:
    lengths = ((p, len(p.read_text(encoding="utf-8").splitlines())) for p in modules().values())
    return [(str(p.relative_to(PACKAGE.parent)), n) for p, n in lengths if n > MAX_LINES]


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_no_import_runs_back_up():
    assert upward(graph()) == []


def test_few_modules_at_the_top():
    assert len(top_modules()) <= MAX_TOP_MODULES, top_modules()


def test_no_file_over_the_limit():
    assert long_files() == []


def test_the_samplers_know_only_the_denoiser_contract():
    g = graph()
    assert not {t for t in g["gouache.sampling.samplers"] if t.startswith(("gouache.model.unet", "gouache.model.text"))}


def main() -> None:
    g = graph()
    per_folder: dict[str, int] = defaultdict(int)
    for name, path in modules().items():
        per_folder[str(path.parent.relative_to(PACKAGE.parent))] += 1
    print("modules per folder:")
    for folder, n in sorted(per_folder.items()):
        print(f"  {folder:22} {n}")
    print(f"modules directly in gouache/ besides __init__: {len(top_modules())}")
    print(f"cycles: {len(cycles(g))}", *("  " + " <-> ".join(c) for c in cycles(g)), sep="\n")
    print(f"imports that run back up: {len(upward(g))}", *(f"  {m} -> {t}" for m, t in upward(g)), sep="\n")
    print(f"files over {MAX_LINES} lines: {len(long_files())}", *(f"  {p}: {n}" for p, n in long_files()), sep="\n")


if __name__ == "__main__":
    sys.exit(main())
