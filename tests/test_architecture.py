"""The package layout keeps its promises: imports point one way, every wing is curated.

Read from the source with ``ast`` (nothing is imported, so no import side effects and no
order dependence): every ``import`` / ``from ... import`` in ``tradingd/``, also the ones
inside functions and under ``TYPE_CHECKING``, since a direction rule is about what a wing
knows of, not about when it learns it. The rules (README "How it fits together"):

* no circle between wings; no circle between modules at import time;
* ``tradingd/daemon/`` is plumbing: it imports no domain wing (every other wing);
* ``tradingd/segment/`` imports only ``errors``, ``clock``, ``constants`` and itself;
* the producer and the consumer never import each other;
* ``errors``, ``clock``, ``constants`` and ``timezones`` import no wing;
* no star imports; every wing's ``__init__`` has a docstring and an ``__all__`` whose names
  it defines or imports.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "tradingd"
#: The top-level modules every wing may use (and which themselves use no wing).
#: (timezones: the zone names and fixed offsets that the config and the loader both parse.)
BASE = {"errors", "clock", "constants", "timezones"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the module (or package) it names, dotted
    line: int
    top_level: bool  # executed at import time (module scope, not under TYPE_CHECKING)
    star: bool


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def wings() -> list[str]:
    """Every subpackage of tradingd/ (new wings are found, not listed)."""
    return sorted(p.parent.name for p in PKG.glob("*/__init__.py"))


def wing_of(module: str) -> str:
    """``tradingd.segment.reader`` -> ``segment``; ``tradingd.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "tradingd"


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, top: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, False
                yield from _walk(stmt, False)
            for stmt in child.orelse:
                yield stmt, top
                yield from _walk(stmt, top)
        else:
            yield child, top
            yield from _walk(child, top)


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a tradingd module by a tradingd module."""
    known = modules()
    out: list[Import] = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, top in _walk(tree, True):
            if isinstance(node, ast.Import):
                out.extend(Import(module, a.name, node.lineno, top, False)
                           for a in node.names if a.name.split(".")[0] == "tradingd")
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path, node)
                if base.split(".")[0] != "tradingd":
                    continue
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    # `from pkg import mod` names the module; `from mod import name` the module
                    target = sub if sub in known else base
                    out.append(Import(module, target, node.lineno, top, a.name == "*"))
    return tuple(out)


def _where(imp: Import) -> str:
    return f"{modules()[imp.module].relative_to(ROOT)}:{imp.line} imports {imp.target}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle in ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m):], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_scan_sees_the_tree() -> None:
    # guards the test itself: a broken scan would find no imports and pass everything
    assert {"segment", "producer", "consumer", "daemon", "inspector"} <= set(wings())
    found = {(wing_of(i.module), wing_of(i.target)) for i in imports()}
    assert ("producer", "segment") in found and ("consumer", "daemon") in found


def test_no_circle_between_wings() -> None:
    graph: dict[str, set[str]] = {}
    for i in imports():
        a, b = wing_of(i.module), wing_of(i.target)
        if a != b:
            graph.setdefault(a, set()).add(b)
    circle = _cycle(graph)
    assert circle is None, "wings import each other in a circle: " + " -> ".join(circle or [])


def test_no_circle_between_modules_at_import_time() -> None:
    known = modules()
    graph: dict[str, set[str]] = {}
    for i in imports():
        if i.top_level and i.target in known and i.target != i.module:
            graph.setdefault(i.module, set()).add(i.target)
    # a module importing its own package (tradingd.segment.reader -> tradingd.segment) goes
    # through the package's __init__, which is then already importing: not a circle
    for m, targets in graph.items():
        targets.difference_update({t for t in targets if m.startswith(t + ".")})
    circle = _cycle(graph)
    assert circle is None, "modules import each other at import time: " + " -> ".join(
        circle or [])


@pytest.mark.parametrize("rule", ["daemon", "segment", "producer-consumer", "base"])
def test_imports_point_one_way(rule: str) -> None:
    domain = set(wings()) - {"daemon"}
    allowed: dict[str, set[str]] = {
        # plumbing: the base modules and itself, no domain wing (also none added later)
        "daemon": BASE | {"daemon", "tradingd"},
        "segment": BASE | {"segment", "tradingd"},
        "base": BASE | {"tradingd"},
    }
    bad = []
    for i in imports():
        src, dst = wing_of(i.module), wing_of(i.target)
        if rule == "producer-consumer":
            if {src, dst} == {"producer", "consumer"}:
                bad.append(_where(i))
        elif rule == "base":
            if src in BASE and dst not in allowed["base"]:
                bad.append(_where(i))
        elif src == rule and dst not in allowed[rule]:
            bad.append(_where(i))
    # `tradingd` itself (the top package, __version__) is allowed to everyone
    assert not bad, f"{rule}: imports against the direction (domain wings: " \
                    f"{sorted(domain)}):\n" + "\n".join(bad)


def test_no_star_imports() -> None:
    stars = [_where(i) for i in imports() if i.star]
    assert not stars, "star imports:\n" + "\n".join(stars)


@pytest.mark.parametrize("wing", wings())
def test_wing_init_is_curated(wing: str) -> None:
    path = PKG / wing / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    assert ast.get_docstring(tree), f"{path.relative_to(ROOT)}: no docstring saying what " \
                                    f"the wing owns"
    defined: set[str] = set()
    exported: list[str] | None = None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom | ast.Import):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    defined.add(t.id)
                    if t.id == "__all__" and node.value is not None:
                        exported = ast.literal_eval(node.value)
    assert exported is not None, f"{path.relative_to(ROOT)}: no literal __all__"
    assert exported, f"{path.relative_to(ROOT)}: __all__ is empty"
    missing = sorted(set(exported) - defined)
    assert not missing, f"{path.relative_to(ROOT)}: __all__ names what it does not define: " \
                        f"{missing}"
    assert len(set(exported)) == len(exported), f"{path.relative_to(ROOT)}: __all__ repeats"


def test_mypy_reaches_every_module() -> None:
    """``[tool.mypy] files`` covers every module; only the named overrides relax it."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert cfg.get("strict") is True
    roots = [ROOT / f for f in cfg["files"]]
    unreached = [str(p.relative_to(ROOT)) for p in modules().values()
                 if not any(p.is_relative_to(r) for r in roots)]
    assert not unreached, f"not checked by mypy: {unreached}"
    relaxed = sorted(m for o in cfg.get("overrides", []) if o.get("ignore_errors")
                     for m in o["module"])
    # issue 14 splits and types the loader; nothing else may be exempt from the checks
    assert relaxed in ([], ["tradingd.producer.loader"]), f"mypy errors ignored in {relaxed}"
    assert not re.search(r"disallow_|allow_untyped", str(cfg.get("overrides", []))), \
        "an override weakens strict mode"
