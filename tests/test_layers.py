"""Imports point down only (DESIGN's layers): checked on every import statement of the
package, lazy ones inside functions included; data and metrics stand alone."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

LEBM = Path(__file__).resolve().parents[1] / "lebm"

# top to bottom; a module may import only from lower ranks (or its own package)
RANKS = {
    "lebm": 10, "lebm.__main__": 10, "lebm.cli": 10,
    "lebm.evaluate": 9,
    "lebm.train": 8,
    "lebm.run": 7,
    "lebm.config": 6,
    "lebm.methods": 5,
    "lebm.models": 4,
    "lebm.priors": 3, "lebm.likelihoods": 3,
    "lebm.sampling": 2, "lebm.nets": 2,
    "lebm.viz": 1.5, "lebm.settings": 1.5, "lebm.data": 1.5, "lebm.metrics": 1.5,
    "lebm.io": 1, "lebm.latent": 1,
    "lebm._version": 0, "lebm.errors": 0,
}
TOP = 10  # the entry points (package root, CLI) may use each other
STANDALONE = ("lebm.data", "lebm.metrics")  # import nothing else from lebm


def _layer(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANKS:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} has no layer in RANKS: add it")


def _module_name(path: Path) -> str:
    rel = path.relative_to(LEBM.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, imported lebm module)`` for every import in the file (``from lebm import x``
    counts as ``lebm.x`` when ``x`` is a module, else as ``lebm``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "lebm"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "lebm":
                continue
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                base = LEBM.parent / Path(*sub.split("."))
                is_module = base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()
                out.append((node.lineno, sub if is_module else node.module))
    return out


def test_every_import_points_down():
    upward = []
    for path in sorted(LEBM.rglob("*.py")):
        me = _module_name(path)
        mine = _layer(me)
        for line, target in _imports(path):
            theirs = _layer(target)
            if theirs == mine or RANKS[theirs] == RANKS[mine] == TOP:
                continue
            if mine in STANDALONE or not RANKS[theirs] < RANKS[mine]:
                upward.append(f"{path.relative_to(LEBM.parent)}:{line}: {me} imports {target}")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The parser sees lazy imports and ``from lebm import name`` forms."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from lebm.train import Trainer\n    from lebm import settings\n")
    assert _imports(f) == [(2, "lebm.train"), (3, "lebm.settings")]
    assert RANKS[_layer("lebm.train.trainer")] > RANKS[_layer("lebm.models.base")]


def _loaded_after(imports: str, prefixes: tuple[str, ...]) -> list[str]:
    code = (f"import json, sys, {imports}; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    return json.loads(out)


def test_data_and_metrics_load_nothing_else_from_lebm():
    for pkg in STANDALONE:
        loaded = _loaded_after(pkg, ("lebm",))
        assert [m for m in loaded if not m.startswith(pkg)] == ["lebm", "lebm._version"], pkg


def test_sampling_and_models_do_not_import_methods_or_training():
    loaded = _loaded_after("lebm.sampling, lebm.priors, lebm.models",
                           ("lebm.train", "lebm.methods", "lebm.cli", "lebm.config"))
    assert loaded == []


def test_benchmarks_use_public_api_only():
    """No benchmark imports a private name of lebm or reaches into a private attribute that
    lebm defines (``ev._x``, ``cli._parser``, ``encoder.trunk`` of old)."""
    private = set()
    for path in LEBM.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                private.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                private.add(node.attr)
    private = {n for n in private if n.startswith("_") and not n.startswith("__")}
    found = []
    for path in sorted((LEBM.parent / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lebm"):
                found += [f"{path.name}:{node.lineno}: imports {a.name}" for a in node.names
                          if a.name.startswith("_")]
            if isinstance(node, ast.Attribute) and node.attr in private:
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert not found, found
