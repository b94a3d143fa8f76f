"""The package's shape: layers whose imports point one way, no import cycles, modules of a readable size."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rpn_exp"


def lint_imports() -> str:
    found = Path(sys.executable).with_name("lint-imports")
    return str(found) if found.is_file() else shutil.which("lint-imports") or pytest.fail(
        "lint-imports is not installed (pip install -e '.[dev]')")


def test_imports_keep_the_layers_and_make_no_cycle():
    done = subprocess.run([lint_imports()], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The contract is live: an upward import (the network importing the run's record) breaks it."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    copy = tmp_path / "rpn_exp"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "nn" / "network.py").write_text((copy / "nn" / "network.py").read_text() + "\nimport rpn_exp.run.record\n")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = rpn_exp\n\n[importlinter:contract:layers]\nname = layers\ntype = layers\n"
        "containers = rpn_exp\nlayers =\n" + "".join(f"    {layer}\n" for layer in config["contracts"][0]["layers"]))
    done = subprocess.run([lint_imports(), "--config", str(tmp_path / ".importlinter")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode != 0 and "rpn_exp.nn.network -> rpn_exp.run.record" in done.stdout



#: The longest module (lines) and function (lines, a formula that reads best whole included) the project keeps.
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def test_no_module_and_no_function_is_longer_than_the_limit():
    import ast

    long = {}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno >= MAX_FUNCTION_LINES:
                long[f"{name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert not long, f"longer than {MAX_MODULE_LINES} lines (module) or {MAX_FUNCTION_LINES} (function): {long}"


def classes_named_in_isinstance(path: Path) -> set[tuple[int, str]]:
    """(line, name) of every class named in an ``isinstance`` call of the module at ``path``."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
            found |= {(node.lineno, n.id if isinstance(n, ast.Name) else n.attr) for n in ast.walk(node.args[1])
                      if isinstance(n, ast.Name | ast.Attribute)}
    return found


def test_layers_choose_their_path_from_declarations_never_from_a_kappa_or_factor_class(tmp_path):
    """ψ declares W (``structure``), κ declares κ(x) (``structure``: its product layout, the norm over it), and each
    factor form computes itself: no module of ``rpn_exp/nn`` asks which κ or which form it holds."""
    from rpn_exp.functions import expansion, factors

    declared = {name for module in (expansion, factors) for name, value in vars(module).items()
                if isinstance(value, type) and value.__module__.startswith("rpn_exp.functions")}
    assert {"TaylorExpansion", "Kronecker", "LowRank", "Outer"} <= declared
    asked = {f"{path.name}:{line} {name}" for path in (PACKAGE / "nn").rglob("*.py")
             for line, name in classes_named_in_isinstance(path) if name in declared}
    assert not asked, asked
    planted = tmp_path / "head.py"  # the check is live: the probe the head once made is found
    planted.write_text("taylor = isinstance(self.expansion, TaylorExpansion) or isinstance(form, (f.Kronecker, int))\n")
    assert classes_named_in_isinstance(planted) >= {(1, "TaylorExpansion"), (1, "Kronecker")}


def config_reads(path: Path) -> list[str]:
    """Where the module at ``path`` reads a composed config (a name or attribute ``cfg``) itself: ``cfg.key``,
    ``cfg.get(...)``, ``cfg[...]``, ``OmegaConf.select(cfg, ...)`` and the like."""
    import ast

    def is_config(node) -> bool:
        return isinstance(node, ast.Name) and node.id == "cfg" or isinstance(node, ast.Attribute) and node.attr == "cfg"

    reads = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute | ast.Subscript) and is_config(node.value):
            reads.append(f"{path.name}:{node.lineno}")
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) and \
                getattr(node.func.value, "id", None) == "OmegaConf" and node.args and is_config(node.args[0]):
            reads.append(f"{path.name}:{node.lineno}")
    return reads


def test_the_composed_config_is_read_in_the_config_layer_only(tmp_path):
    """``rpn_exp.config`` turns the composed config into typed settings (``rpn_exp.config.settings``) and builds
    from it; every other module passes it along without reading it."""
    outside = [path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] != "config"]
    reads = [read for path in outside for read in config_reads(path)]
    assert not reads, reads
    planted = tmp_path / "task.py"  # the check is live: the reads the run once made are found
    planted.write_text("out = Path(cfg.paths.output_dir)\nif self.cfg.get('test'):\n    x = cfg['seed']\n"
                       "lr = OmegaConf.select(cfg, 'optimizer.lr')\n")
    assert sorted(config_reads(planted)) == ["task.py:1", "task.py:2", "task.py:3", "task.py:4"]
