"""The package's shape, checked: imports point one way, no cycles, no hidden imports, small modules.

Layering (lower never imports higher; ``reference/`` and ``benchmarks/`` sit outside)::

    errors  <-  kernels, fileio  <-  activations, initializers, regularizers, arrays, callbacks, datasets,
      schedules  <-  layers, losses, optimizers  <-  model, gradcheck  <-  io  <-  training
      <-  sequential  <-  presets  <-  keras, study  <-  explore  <-  cli  <-  minicnn/__init__
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "minicnn"
RANK = {"errors": 0, "kernels": 1, "fileio": 1,
        "activations": 2, "initializers": 2, "regularizers": 2, "arrays": 2, "callbacks": 2, "datasets": 2,
        "schedules": 2,
        "layers": 3, "losses": 3, "optimizers": 3,
        "model": 4, "gradcheck": 4,
        "io": 5, "training": 6, "sequential": 7, "presets": 8, "keras": 9, "study": 9, "explore": 10,
        "cli": 11, "__init__": 12, "__main__": 12}
#: modules allowed to exceed MAX_LINES, and why
LONG_MODULES = {"kernels/numba/tiles.py": "the LLVM-IR tile emitter reads best whole"}
MAX_LINES = 600
#: function-level imports of minicnn modules that are there on purpose
LAZY_IMPORTS = {
    # the backend registry imports the chosen backend on first use: the numba backend loads its
    # cached kernels at import, which `import minicnn` and the numpy backend should not pay for
    "kernels/__init__.py",
}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, path.relative_to(PACKAGE).as_posix()


def dotted(rel: str) -> list[str]:
    parts = rel[:-3].split("/")
    return parts[:-1] if parts[-1] == "__init__" else parts


def resolve(rel: str, node: ast.ImportFrom | ast.Import) -> list[list[str]]:
    """The minicnn modules (as part lists below minicnn) an import statement names."""
    out = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "minicnn":
                out.append(alias.name.split(".")[1:])
        return out
    if node.level == 0:
        if not (node.module or "").startswith("minicnn"):
            return []
        base = node.module.split(".")[1:]
    else:
        here = rel[:-3].split("/")[:-1]  # the package the module is in
        base = here[:len(here) - (node.level - 1)] + (node.module.split(".") if node.module else [])
    for alias in node.names:
        out.append(base + [alias.name] if not node.module or (PACKAGE.joinpath(*base, alias.name).with_suffix(".py").exists()
                                                              or PACKAGE.joinpath(*base, alias.name).is_dir()) else base)
    return out


def group(parts: list[str]) -> str:
    return parts[0] if parts else "__init__"


def imports(path, rel):
    tree = ast.parse(path.read_text(), filename=str(path))
    top = set(id(n) for n in tree.body)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in resolve(rel, node):
                yield node, id(node) in top or _in_type_checking(tree, node), target


def _in_type_checking(tree, node) -> bool:
    for n in tree.body:
        if isinstance(n, ast.If) and any(node is m for m in ast.walk(n)):
            return True
    return False


def test_imports_point_one_way():
    bad = []
    for path, rel in modules():
        mine = group(dotted(rel))
        for node, _, target in imports(path, rel):
            theirs = group(target)
            if theirs == mine:
                continue
            if RANK[theirs] >= RANK[mine]:
                bad.append(f"{rel}:{node.lineno} imports minicnn.{'.'.join(target)} ({theirs} is not below {mine})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules():
    graph = {}
    for path, rel in modules():
        me = ".".join(dotted(rel))
        graph.setdefault(me, set())
        for _, at_top, target in imports(path, rel):
            name = ".".join(target)
            if at_top and name != me and not me.startswith(name + ".") and name:
                graph[me].add(name)
    # a package __init__ re-exporting its own submodules is not a cycle
    state, cycle = {}, []

    def visit(n, stack):
        state[n] = 1
        for m in graph.get(n, ()):
            if m.startswith(n + "."):
                continue
            if state.get(m) == 1:
                cycle.append(stack[stack.index(m):] + [m] if m in stack else [n, m])
            elif state.get(m) is None:
                visit(m, stack + [m])
        state[n] = 2

    for n in graph:
        if state.get(n) is None:
            visit(n, [n])
    assert not cycle, cycle


def test_no_function_level_imports_of_minicnn_modules():
    bad = [f"{rel}:{node.lineno}" for path, rel in modules() if rel not in LAZY_IMPORTS
           for node, at_top, _ in imports(path, rel) if not at_top]
    assert not bad, bad


@pytest.mark.parametrize("path,rel", list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_modules_stay_small(path, rel):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES or rel in LONG_MODULES, f"{rel} has {n} lines"
