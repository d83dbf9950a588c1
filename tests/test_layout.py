"""The engine's layout: imports point down the data path, and no module imports itself round a cycle.

Every import counts, also those inside functions (only optional heavy dependencies may load
late, and those are outside the engine). The layers, lowest first:

    base -> io -> settings, motion -> context -> keyframes -> fast, quality -> scale, train -> pipeline -> cli
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[1] / "core" / "flowstyle"
LAYERS = {"base": 0, "io": 1, "settings": 2, "motion": 2, "context": 3, "keyframes": 4, "fast": 5, "quality": 5,
          "scale": 6, "train": 6, "pipeline": 7, "cli": 8, "__init__": 9, "__main__": 9}


def module_name(path: Path, root: Path = ENGINE) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [root.name, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_imports(path: Path, root: Path = ENGINE) -> list[tuple[int, str]]:
    """(line, engine module) for every import of an engine module in ``path``, at any depth."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root.name:
                continue
            for alias in node.names:  # ``from . import names`` imports a module
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if _exists(sub, root) else target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == root.name]
    return found


def _exists(module: str, root: Path) -> bool:
    rel = Path(*module.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def import_graph(root: Path = ENGINE) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        me = module_name(path, root)
        graph.setdefault(me, set()).update(t for _, t in engine_imports(path, root) if t != me)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules (first == last), or [] when there is none.

    A package's ``__init__`` is the package's own module; importing ``pkg.mod`` runs
    ``pkg/__init__`` first, so that edge counts too.
    """
    edges = {m: set(ts) for m, ts in graph.items()}
    for m in list(edges):
        for t in list(edges[m]):
            parent = t.rpartition(".")[0]
            while parent and parent in graph and parent != m and not m.startswith(parent + "."):
                edges[m].add(parent)
                parent = parent.rpartition(".")[0]
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                cycle = visit(t)
                if cycle:
                    return cycle
        stack.pop()
        state[m] = 2
        return []

    for m in sorted(edges):
        if m not in state:
            cycle = visit(m)
            if cycle:
                return cycle
    return []


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def layer_violations(root: Path = ENGINE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        me = module_name(path, root)
        for line, target in engine_imports(path, root):
            a, b = _layer(me), _layer(target)
            if a != b and LAYERS[b] >= LAYERS[a]:
                bad.append(f"{path.relative_to(root)}:{line} ({a}) imports {target} ({b})")
    return bad


class TestLayout:
    def test_no_import_cycle(self):
        assert find_cycle(import_graph()) == []

    def test_imports_point_down_the_data_path(self):
        assert layer_violations() == []

    def test_every_module_is_in_a_layer(self):
        assert {_layer(m) for m in import_graph()} <= set(LAYERS)

    def test_at_least_four_stage_folders(self):
        folders = [p.name for p in ENGINE.iterdir() if (p / "__init__.py").is_file()]
        assert len(folders) >= 4 and {"io", "motion", "fast", "quality"} <= set(folders)


class TestScanner:
    """The checks themselves must be able to fail."""

    def _tree(self, tmp_path: Path, files: dict[str, str]) -> Path:
        root = tmp_path / "flowstyle"
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        return root

    def test_cycle_through_a_function_level_import(self, tmp_path):
        root = self._tree(tmp_path, {"__init__.py": "", "a.py": "from . import b\n",
                                     "b.py": "def f():\n    from .a import x\n"})
        cycle = find_cycle(import_graph(root))
        assert cycle[0] == cycle[-1] and {"flowstyle.a", "flowstyle.b"} <= set(cycle)

    def test_cycle_through_a_package_init(self, tmp_path):
        root = self._tree(tmp_path, {"__init__.py": "", "p/__init__.py": "from .m import x\n",
                                     "p/m.py": "from ..q import y\n", "q.py": "from .p.m import z\n"})
        assert find_cycle(import_graph(root))

    def test_no_cycle_in_a_chain(self, tmp_path):
        root = self._tree(tmp_path, {"__init__.py": "", "a.py": "from .b import x\n", "b.py": "import os\n"})
        assert find_cycle(import_graph(root)) == []

    def test_upward_import_is_reported(self, tmp_path):
        root = self._tree(tmp_path, {"__init__.py": "", "io/__init__.py": "", "io/x.py": "from ..fast import y\n",
                                     "fast/__init__.py": ""})
        assert layer_violations(root) == ["io/x.py:1 (io) imports flowstyle.fast (fast)"]


@pytest.mark.parametrize("path", sorted(ENGINE.rglob("*.py")), ids=lambda p: str(p.relative_to(ENGINE)))
def test_every_module_declares_all(path):
    if path.name == "__main__.py":
        pytest.skip("__main__ only runs the CLI")
    assert "__all__" in path.read_text(encoding="utf-8")
