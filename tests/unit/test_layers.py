"""The layer tables of docs/architecture.md hold for the code: every Python import and every native
#include stays within what its package or folder may use, and no Python modules import each
other in a circle. The tables are read from the document, so changing a rule means changing
the document."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "aioixy"
NATIVE = PKG / "_native"
DOC = (ROOT / "docs" / "architecture.md").read_text()


def _table(header: str) -> dict[str, set[str]]:
    """Rows of the markdown table whose header row starts with `header`: first column -> the
    backticked names of the last column."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows: dict[str, set[str]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        key = cells[0].strip("`").rstrip("/")
        rows[key] = set(re.findall(r"`([^`]+)`", cells[-1]))
    assert rows, f"no rows under {header!r}"
    return rows


# --- Python -------------------------------------------------------------------------------------

def _unit(module: str) -> str:
    """The table row a module of the package belongs to."""
    parts = module.split(".")
    assert parts[0] == "aioixy", module
    if len(parts) == 1:
        return "aioixy"
    return parts[1]


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        if "_native" in rel.parts:
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(module: str, path: Path, top_level_only: bool = False) -> set[str]:
    """The aioixy modules `module` imports (`from aioixy import x` counts as the submodule x
    if there is one, else as the public face)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "aioixy"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "aioixy":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


PY_RULES = _table("| package | holds | may import |")


def test_python_table_covers_every_package():
    units = {_unit(m) for m in MODULES}
    assert units == set(PY_RULES), "docs/architecture.md's Python table and the package differ"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_python_imports_follow_the_table(module):
    unit = _unit(module)
    allowed = PY_RULES[unit] | {unit}
    wrong = sorted(m for m in _imports(module, MODULES[module]) if _unit(m) not in allowed)
    assert not wrong, f"{module} ({unit}) imports {wrong}; the table allows {sorted(allowed)}"


def test_no_import_circle():
    graph = {m: {i for i in _imports(m, p, top_level_only=True) if i in MODULES and i != m}
             for m, p in MODULES.items()}
    # a package's __init__ importing its own submodules is how packages work, not a circle
    for m in graph:
        graph[m] = {i for i in graph[m] if not i.startswith(m + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join([*stack[stack.index(n):], n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The check above can fail: an import from ops/ up into core/ is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from aioixy.core.port import Port\n")
    unit = "ops"
    wrong = [m for m in _imports("aioixy.ops.bad", bad) if _unit(m) not in PY_RULES[unit] | {unit}]
    assert wrong == ["aioixy.core.port"]


# --- native -------------------------------------------------------------------------------------

C_RULES = _table("| folder | holds | may include |")
FOLDERS = sorted(p.name for p in NATIVE.iterdir() if p.is_dir() and p.name != "__pycache__")
HEADERS = {h.name: h.relative_to(NATIVE).as_posix() for h in NATIVE.rglob("*.h")}


def _allowed(folder: str, header: str) -> bool:
    if header.startswith(folder + "/"):
        return True
    for rule in C_RULES[folder]:
        if rule.endswith("/") and header.startswith(rule):
            return True
        if fnmatch.fnmatch(header, rule):
            return True
    return False


def test_native_table_covers_every_folder():
    assert set(FOLDERS) == set(C_RULES)


@pytest.mark.parametrize("folder", FOLDERS)
def test_native_includes_follow_the_table(folder):
    wrong = []
    for src in sorted((NATIVE / folder).glob("*.[ch]")):
        for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', src.read_text(), re.M):
            header = HEADERS.get(Path(name).name)
            assert header is not None, f"{src.name} includes {name}, which is not in _native/"
            if not _allowed(folder, header):
                wrong.append(f"{src.name} -> {header}")
    assert not wrong, f"{folder}/ includes what the table does not allow: {wrong}"


# --- test tiers ---------------------------------------------------------------------------------

def test_test_tiers_are_folders_markers_and_the_readme_table():
    """One folder = one tier = one marker: the README's table, the markers pyproject registers,
    the tiers tests/conftest.py marks by folder and the folders holding tests are one list."""
    from tests.conftest import TIERS

    readme = (ROOT / "README.md").read_text().splitlines()
    start = readme.index("| tier | folder | command | needs |")
    rows = {}
    for line in readme[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = (cells[1].strip("`"), cells[2])
    folders = {p.parent.name for p in (ROOT / "tests").glob("*/test_*.py")}
    folders |= {p.parent.name for p in (ROOT / "tests").glob("*/*.c")}
    assert set(rows) == set(TIERS) == folders
    assert not list((ROOT / "tests").glob("test_*.py")), "a test outside a tier folder"
    pyproject = (ROOT / "pyproject.toml").read_text()
    for tier, (folder, command) in rows.items():
        assert folder == f"tests/{tier}/"
        assert command.endswith(f"-m {tier}`") or command.endswith(f"-m {tier}")
        assert f'"{tier}: tests/{tier}' in pyproject, f"marker {tier} not registered"
