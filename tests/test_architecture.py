"""The package's shape, checked from its source: no import cycles, a self-contained core, no
terminal output in the runner, and no oversized module or function.

Each check is a plain function over a source tree (`{relative path: source text}`), proven
first on small synthetic trees that break it, then applied to the real `umup_sweep/`.

Import edges. Only imports that run are counted: module level and inside functions (those run
when the function does), but not under `if TYPE_CHECKING:`. `from P import name` is an edge to
the module `P.name` when that module exists, otherwise to `P` (`name` is an attribute of P);
relative imports are resolved the same way. Importing `a.b.c` also runs the `__init__` of `a`
and `a.b`, but those implicit parent-package edges are NOT counted: a package `__init__` that
re-exports its submodules would otherwise form a "cycle" with every submodule that imports a
sibling by its full name, which is the normal, harmless layout. An explicit import of the
package itself (`from umup_sweep.analysis import x` where x is not a module) IS an edge to the
package's `__init__`, so a submodule that imports names back from its own package `__init__`
shows up as a cycle, as it should.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "umup_sweep"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

Sources = Mapping[str, str]  # relative posix path ("pkg/sub/mod.py") -> source text


# --- the checkers --------------------------------------------------------------------------


def load_tree(root: Path, package: str) -> dict[str, str]:
    """Every `.py` file of `root/package`, keyed by its path relative to `root`."""
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted((root / package).rglob("*.py"))
    }


def module_names(sources: Sources) -> dict[str, str]:
    """Dotted module name -> path; `pkg/sub/__init__.py` is the module `pkg.sub`."""
    names = {}
    for path in sources:
        parts = path[: -len(".py")].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `<anything>.TYPE_CHECKING` (e.g. `typing.TYPE_CHECKING`)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _runtime_import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node` that can run, skipping `if TYPE_CHECKING:` bodies
    (their `else:` branch does run, so it is kept)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                if isinstance(stmt, ast.Import | ast.ImportFrom):
                    yield stmt
                yield from _runtime_import_nodes(stmt)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _runtime_import_nodes(child)


def _all_import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def _import_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a `from ... import` reads from (resolves relative levels)."""
    if node.level == 0:
        return node.module or ""
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    base = package_parts[: len(package_parts) - (node.level - 1)]
    if node.module:
        base = [*base, *node.module.split(".")]
    return ".".join(base)


def import_graph(sources: Sources, package: str) -> dict[str, set[str]]:
    """Runtime import edges between the modules of `package`: module -> modules it imports.

    Every module of the tree is a node (also those that import nothing); self-edges are
    dropped. See the module docstring for what counts as an edge.
    """
    modules = module_names(sources)
    graph: dict[str, set[str]] = {name: set() for name in modules}

    def inside(name: str) -> bool:
        return name == package or name.startswith(package + ".")

    for module, path in modules.items():
        is_package = path.endswith("/__init__.py")
        tree = ast.parse(sources[path], filename=path)
        for node in _runtime_import_nodes(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _import_base(node, module, is_package)
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    targets.append(candidate if candidate in modules else base)
            for target in targets:
                if inside(target) and target != module:
                    # `import pkg.x.y` where only pkg.x exists (a typo would fail anyway):
                    # attribute the edge to the nearest existing module.
                    while target not in modules and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target in modules and target != module:
                        graph[module].add(target)
    return graph


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One concrete cycle per strongly connected component that has one (Tarjan), each as
    `[m0, m1, ..., m0]` starting from its alphabetically first module; sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def strongconnect(root: str) -> None:
        # Iterative Tarjan (a deep package must not hit Python's recursion limit).
        nonlocal counter
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)

    cycles = []
    for component in components:
        members = set(component)
        if len(members) == 1:
            (only,) = members
            if only not in graph.get(only, ()):
                continue
        cycles.append(_cycle_through(min(members), members, graph))
    return sorted(cycles)


def _cycle_through(start: str, members: set[str], graph: Mapping[str, set[str]]) -> list[str]:
    """A shortest path start -> ... -> start inside one strongly connected component (BFS)."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"{start} is on no cycle of its component")  # unreachable for an SCC


def boundary_violations(graph: Mapping[str, set[str]], inner: str) -> list[str]:
    """`a imports b` for every module a inside package `inner` that imports a module b of the
    same top-level package outside `inner` (the graph only holds the package's own modules)."""

    def within(name: str) -> bool:
        return name == inner or name.startswith(inner + ".")

    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if within(module)
        for target in targets
        if not within(target)
    )


def imports_of_top_level(source: str, top: str, filename: str = "<source>") -> list[str]:
    """`line N: <statement>` for every import of `top` or its submodules anywhere in the
    source, `if TYPE_CHECKING:` blocks included (no coupling to `top` at all)."""
    found = []
    for node in _all_import_nodes(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif node.level == 0 and node.module:
            names = [node.module]
        else:
            names = []
        if any(name == top or name.startswith(top + ".") for name in names):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def oversized(sources: Sources, max_module_lines: int, max_function_lines: int) -> list[str]:
    """Modules longer than `max_module_lines` lines and functions (methods, nested functions,
    each on its own) longer than `max_function_lines` lines, from `def` to last line."""
    offenders = []
    for path, source in sorted(sources.items()):
        n_lines = len(source.splitlines())
        if n_lines > max_module_lines:
            offenders.append(f"{path}: module has {n_lines} lines (max {max_module_lines})")
        for qualname, node in _functions(ast.parse(source, filename=path)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > max_function_lines:
                offenders.append(
                    f"{path}:{node.lineno}: {qualname} has {length} lines "
                    f"(max {max_function_lines})"
                )
    return offenders


def _functions(
    node: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def _format_cycles(cycles: list[list[str]]) -> str:
    return "\n".join("  " + " -> ".join(cycle) for cycle in cycles)


# --- the checkers on synthetic trees: each one can fail -------------------------------------


def test_import_cycle_through_module_and_function_level_imports_is_found() -> None:
    tree = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import f\n",
        "pkg/b.py": "import pkg.c as c\n\ndef f():\n    return c\n",
        "pkg/c.py": "def g():\n    from pkg import a\n    return a\n",
        "pkg/d.py": "from pkg import a\n",  # into the cycle, not on it
    }
    graph = import_graph(tree, "pkg")
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.c"},
        "pkg.c": {"pkg.a"},
        "pkg.d": {"pkg.a"},
    }
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_type_checking_imports_are_not_edges_but_their_else_branch_is() -> None:
    tree = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import f\n",
        "pkg/b.py": (
            "import typing\nfrom typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg.a import X\n"
            "if typing.TYPE_CHECKING:\n    import pkg.a\n"
            "def f(x: 'X') -> None: ...\n"
        ),
    }
    assert find_cycles(import_graph(tree, "pkg")) == []
    tree["pkg/b.py"] += "if TYPE_CHECKING:\n    pass\nelse:\n    from pkg import a\n"
    assert find_cycles(import_graph(tree, "pkg")) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_from_import_resolves_to_the_submodule_or_the_package() -> None:
    tree = {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from pkg.sub._x import f\nVALUE = 1\n",
        "pkg/sub/_x.py": "from . import _y\nfrom ._y import g\n\ndef f(): return g()\n",
        "pkg/sub/_y.py": "from .. import other\n\ndef g(): return 1\n",
        "pkg/other.py": "from pkg.sub import VALUE, _y\nimport os, json\n",
    }
    graph = import_graph(tree, "pkg")
    assert graph["pkg.sub"] == {"pkg.sub._x"}
    assert graph["pkg.sub._x"] == {"pkg.sub._y"}
    assert graph["pkg.sub._y"] == {"pkg.other"}
    # `VALUE` is an attribute of the package, `_y` a module: one edge each.
    assert graph["pkg.other"] == {"pkg.sub", "pkg.sub._y"}
    # Two cycles run through pkg.other; the shorter one is reported.
    assert find_cycles(graph) == [["pkg.other", "pkg.sub._y", "pkg.other"]]
    # Without the direct edge: other -> sub (its __init__) -> _x -> _y -> other.
    graph["pkg.other"].discard("pkg.sub._y")
    assert find_cycles(graph) == [["pkg.other", "pkg.sub", "pkg.sub._x", "pkg.sub._y", "pkg.other"]]


def test_reexporting_package_init_is_not_a_cycle_but_importing_back_from_it_is() -> None:
    tree = {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from pkg.sub._x import f\nfrom pkg.sub._y import g\n",
        "pkg/sub/_x.py": "from pkg.sub._y import g\n\ndef f(): return g()\n",
        "pkg/sub/_y.py": "def g(): return 1\n",
    }
    # Running pkg.sub._x runs pkg.sub's __init__ first: an implicit edge, not counted.
    assert find_cycles(import_graph(tree, "pkg")) == []
    tree["pkg/sub/_y.py"] = "from pkg.sub import f\n\ndef g(): return f\n"
    cycles = find_cycles(import_graph(tree, "pkg"))
    assert cycles == [["pkg.sub", "pkg.sub._y", "pkg.sub"]]


def test_two_independent_cycles_are_both_reported() -> None:
    tree = {
        "pkg/__init__.py": "",
        "pkg/a.py": "import pkg.b\n",
        "pkg/b.py": "import pkg.a\n",
        "pkg/c.py": "from pkg import d\n",
        "pkg/d.py": "from pkg import c\n",
    }
    cycles = find_cycles(import_graph(tree, "pkg"))
    assert cycles == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.c", "pkg.d", "pkg.c"]]
    assert "pkg.a -> pkg.b -> pkg.a" in _format_cycles(cycles)


def test_core_boundary_violation_is_found() -> None:
    tree = {
        "pkg/__init__.py": "",
        "pkg/precision.py": "",
        "pkg/core/__init__.py": "from pkg.core.ops import f\n",
        "pkg/core/ops.py": "import torch\n\ndef f():\n    from pkg.precision import cast\n",
        "pkg/core/rules.py": "from pkg.core import ops\n",
    }
    graph = import_graph(tree, "pkg")
    assert boundary_violations(graph, "pkg.core") == ["pkg.core.ops imports pkg.precision"]
    tree["pkg/core/ops.py"] = "import torch\n"
    assert boundary_violations(import_graph(tree, "pkg"), "pkg.core") == []


def test_imports_of_a_library_are_found_anywhere_in_the_file() -> None:
    source = (
        "import richer\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from rich.console import Console\n"
        "def show():\n    import rich\n"
    )
    assert imports_of_top_level(source, "rich") == [
        "line 4: from rich.console import Console",
        "line 6: import rich",
    ]
    assert imports_of_top_level("import richer\nfrom .rich import x\n", "rich") == []


def test_oversized_module_and_function_are_listed() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(79))
    long_fn = "def long():\n" + body + "    return 0\n"  # 81 lines
    ok_fn = "def ok():\n" + body + "\n"  # 80 lines
    method = "class C:\n    def m(self):\n" + "".join(f"        y{i} = {i}\n" for i in range(80))
    tree = {"pkg/a.py": long_fn + ok_fn, "pkg/b.py": "\n" * 501, "pkg/c.py": method}
    assert oversized(tree, 500, 80) == [
        "pkg/a.py:1: long has 81 lines (max 80)",
        "pkg/b.py: module has 501 lines (max 500)",
        "pkg/c.py:2: C.m has 81 lines (max 80)",
    ]
    assert oversized({"pkg/a.py": ok_fn, "pkg/b.py": "\n" * 500}, 500, 80) == []


# --- the real package ----------------------------------------------------------------------


def _real_tree() -> dict[str, str]:
    tree = load_tree(REPO, PACKAGE)
    assert f"{PACKAGE}/__init__.py" in tree and f"{PACKAGE}/core/__init__.py" in tree
    return tree


def test_package_has_no_import_cycles() -> None:
    cycles = find_cycles(import_graph(_real_tree(), PACKAGE))
    assert not cycles, "import cycles in umup_sweep (runtime imports):\n" + _format_cycles(cycles)


def test_core_imports_nothing_from_the_rest_of_the_package() -> None:
    graph = import_graph(_real_tree(), PACKAGE)
    violations = boundary_violations(graph, f"{PACKAGE}.core")
    assert not violations, "umup_sweep.core must only import umup_sweep.core:\n  " + "\n  ".join(
        violations
    )


def test_runner_does_not_import_rich() -> None:
    path = REPO / PACKAGE / "runner.py"
    found = imports_of_top_level(path.read_text(encoding="utf-8"), "rich", str(path))
    assert not found, (
        "umup_sweep/runner.py imports rich (terminal output belongs in commands/):\n  "
        + ("\n  ".join(found))
    )


def test_no_oversized_modules_or_functions() -> None:
    offenders = oversized(_real_tree(), MAX_MODULE_LINES, MAX_FUNCTION_LINES)
    assert not offenders, "too long:\n  " + "\n  ".join(offenders)
