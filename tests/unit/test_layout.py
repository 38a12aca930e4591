"""The package's architecture, checked from its imports: every module sits in a layer and imports
only from layers below it (or its own subpackage), the training and scoring wings never import each
other, no import circle, no private name imported across modules, a Ray-free model core, and only
the CLI imports inside functions (so that `textcnn --help` does not load torch and Ray)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import textcnn

pytestmark = pytest.mark.unit

PACKAGE = pathlib.Path(textcnn.__file__).parent
LAYERS = {            # module or subpackage -> layer; a module imports from lower layers only
    "textcnn.errors": 0,
    "textcnn.config": 1, "textcnn.storage": 1, "textcnn.console": 1, "textcnn.stopping": 1, "textcnn.sample": 1,
    "textcnn.runtime": 2,
    "textcnn.core": 3,
    "textcnn.training": 4, "textcnn.scoring": 4,
    "textcnn.demo": 5, "textcnn.cli": 5, "textcnn.__main__": 6, "textcnn": 6,
}
LAZY_IMPORTS_ALLOWED = {"textcnn.cli"}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").is_file()


def _imports(path: pathlib.Path) -> list[tuple[str, list[str], bool]]:
    """(module, names imported from it, inside a function?) of each textcnn import in path;
    `from textcnn import storage` counts as an import of textcnn.storage."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        inside = node.col_offset > 0 if isinstance(node, ast.stmt) else False
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "textcnn":
            names = [a.name for a in node.names]
            found += [(f"{node.module}.{n}", [], inside) for n in names if _is_module(f"{node.module}.{n}")]
            names = [n for n in names if not _is_module(f"{node.module}.{n}")]
            found += [(node.module, names, inside)] if names else []
        elif isinstance(node, ast.Import):
            found += [(a.name, [], inside) for a in node.names if a.name.split(".")[0] == "textcnn"]
    return found


def _graph() -> dict[str, list[tuple[str, list[str], bool]]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> tuple[str, int]:
    key = max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)
    return key, LAYERS[key]


def test_every_module_imports_only_from_lower_layers_or_its_own_subpackage():
    wrong = []
    for module, imports in _graph().items():
        home, layer = _layer(module)
        for target, _, _ in imports:
            there, target_layer = _layer(target)
            if target_layer > layer or (target_layer == layer and there != home):
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_no_import_circle():
    graph = {m: {t for t, _, _ in imports if t != "textcnn"} for m, imports in _graph().items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            assert visit(start, [start]) is None


def test_no_private_name_crosses_a_module_and_only_the_cli_imports_lazily():
    private, lazy = [], []
    for module, imports in _graph().items():
        for target, names, inside in imports:
            private += [f"{module}: {target}.{n}" for n in names if n.startswith("_") and n != "__version__"]
            if inside and module not in LAZY_IMPORTS_ALLOWED:
                lazy.append(f"{module} -> {target}")
    assert not private, private
    assert not lazy, lazy


def test_the_model_core_is_ray_free():
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "ray" not in roots, path


def test_the_scoring_wing_loads_no_training_module():
    code = ("import sys, pkgutil, importlib, textcnn.scoring as s\n"
            "for m in pkgutil.iter_modules(s.__path__): importlib.import_module('textcnn.scoring.' + m.name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('textcnn.training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_the_fixture_sees_every_wing():
    """The checks above would pass on an empty graph: they must see the modules they judge."""
    graph = _graph()
    assert {"textcnn.core.model", "textcnn.training.train", "textcnn.scoring.run", "textcnn.cli"} <= set(graph)
    assert ("textcnn.core.artifacts", [], False) in graph["textcnn.scoring.scorer"]
