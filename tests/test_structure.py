"""Facts about the package's shape that a test holds (issue 20): no import circle, commands that
reach environments only through the pipeline, backends that never import each other, no private
names imported across modules, no backend told apart by a file name."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dlsetup"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[str, str, int]]:
    """(imported module, imported name or '', line) of every import that runs, module-level or
    inside a function; ``if TYPE_CHECKING:`` blocks never run and are left out."""

    def visit(node: ast.AST) -> Iterator[tuple[str, str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from (i for n in child.orelse for i in visit_one(n))
                continue
            yield from visit_one(child)

    def visit_one(node: ast.AST) -> Iterator[tuple[str, str, int]]:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, "", node.lineno
        else:
            yield from visit(node)

    yield from visit(tree)


def _graph() -> dict[str, list[tuple[str, str, int]]]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules[name] = list(_imports(tree, name, path.name == "__init__.py"))
    return modules


GRAPH = _graph()


def _resolve(target: str, name: str) -> str | None:
    """The dlsetup module an import loads: ``from a.b import c`` is ``a.b.c`` when that is a module."""
    if f"{target}.{name}" in GRAPH:
        return f"{target}.{name}"
    return target if target in GRAPH else None


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in GRAPH}
    for module, imports in GRAPH.items():
        for target, name, _ in imports:
            found = _resolve(target, name)
            if found is not None and found != module:
                edges[module].add(found)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    return found


def test_no_import_circle_in_the_package() -> None:
    # a package's __init__ importing its own submodules is not a circle worth naming
    edges = {
        m: {t for t in targets if not (m.startswith(t + ".") and t in GRAPH)}
        for m, targets in _edges().items()
    }
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


BACKEND_PACKAGES = ("dlsetup.envs.conda", "dlsetup.envs.venv", "dlsetup.envs.pypi")


def _under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_commands_reach_environments_only_through_the_pipeline() -> None:
    wrong = [
        f"{module}:{line} imports {target}"
        for module, imports in GRAPH.items()
        if module.startswith("dlsetup.commands") or module == "dlsetup.cli"
        for target, name, line in imports
        if _under(_resolve(target, name) or target, BACKEND_PACKAGES)
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("backend", "other"),
    [("dlsetup.envs.conda", "dlsetup.envs.venv"), ("dlsetup.envs.venv", "dlsetup.envs.conda")],
)
def test_backends_never_import_each_other(backend: str, other: str) -> None:
    wrong = [
        f"{module}:{line} imports {target}"
        for module, imports in GRAPH.items()
        if _under(module, (backend,))
        for target, name, line in imports
        if _under(_resolve(target, name) or target, (other,))
    ]
    assert wrong == []


def test_the_shared_stages_import_no_backend_at_module_level() -> None:
    """The pipeline chooses a backend lazily; the shared stages below it import none at all."""
    shared = [
        m
        for m in GRAPH
        if m.startswith("dlsetup.envs.")
        and not _under(m, (*BACKEND_PACKAGES, "dlsetup.envs.pipeline"))
    ]
    wrong = [
        f"{module}:{line} imports {target}"
        for module in shared
        for target, name, line in GRAPH[module]
        if _under(_resolve(target, name) or target, BACKEND_PACKAGES)
    ]
    assert wrong == []


def test_no_private_name_is_imported_from_another_module() -> None:
    wrong = [
        f"{module}:{line} imports {name} from {target}"
        for module, imports in GRAPH.items()
        for target, name, line in imports
        if target.startswith("dlsetup")
        and name.startswith("_")
        and not name.startswith("__")
        and target != module
    ]
    assert wrong == []


def test_no_backend_is_told_apart_by_a_file_name() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{n}"
        for path in PACKAGE.rglob("*.py")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if 'startswith("pylock' in line or "is_venv_lock" in line
    ]
    assert wrong == []
