"""The shape of leaklib's imports: no circles, the CLI at the edge, lazy imports only for cause.

Read with ``ast`` from the source files, so nothing is imported and the checks are fast:

- every ``import`` is an edge from its module to the leaklib module it names, wherever it
  stands (module level or inside a function); ``from leaklib import x`` goes to
  ``leaklib.x`` when ``x`` is a module; a package's ``__init__`` is its own node. Imports
  under ``if TYPE_CHECKING:`` never run and are not edges;
- no module outside ``leaklib/cli/`` imports ``leaklib.cli`` (the library returns or raises);
- an import inside a function body is for a heavy or optional dependency only, and says why
  in a ``#`` comment on its line or the line above;
- a module loaded by name (``importlib.import_module``) is named in a table,
  ``leaklib.cli.COMMANDS`` or ``leaklib.backends.BACKENDS``, as ``"module:function"``; each
  entry names a module and a top-level name in it; the commands' entries are edges of the
  import graph.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "leaklib"

# Heavy or optional third-party packages a function may import on first use.
LAZY_ALLOWED = (
    "google",  # Cloud clients: seconds to import, only for gs://, firestore://, bigquery://
    "grpc",
    "pandas_gbq",
    "mlflow",  # 1.6 to 2.5 s; only the steps that track
    "skops",
    "nbconvert",  # only report rendering
    "seaborn",  # one figure
    "wntr",  # the optional simulate extra
    "epyt",
)
# Modules loaded by name at run time, each through its one table of "module:function" (or
# "module:Class") strings: the commands (`leaklib.cli.COMMANDS`, only the called one loads) and
# the storage backends (`leaklib.backends.BACKENDS`, only the scheme asked for). Nothing else
# calls importlib.import_module.
TABLES = {"leaklib.cli": "COMMANDS", "leaklib.backends": "BACKENDS"}
_DIRECTIVE = re.compile(r"#\s*(noqa|type:|pragma|fmt:)[^#]*")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    line: int
    target: str  # what the statement names, absolute (``leaklib.x`` or ``mlflow.models``)
    in_function: bool
    text: str
    above: str

    @property
    def where(self) -> str:
        return f"{self.module}:{self.line}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _absolute(node: ast.ImportFrom, module: str) -> str:
    if not node.level:
        return node.module or ""
    package = module if _is_package(module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = _absolute(node, module)
    named = [f"{base}.{alias.name}" for alias in node.names]
    found = [name for name in named if name in MODULES]  # from leaklib import x: module x
    return found + ([base] if len(found) < len(named) else [])


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(module: str) -> list[Import]:
    source = MODULES[module].read_text()
    lines = ["", *source.splitlines()]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.extend(
                    Import(
                        module,
                        child.lineno,
                        target,
                        in_function,
                        lines[child.lineno],
                        lines[child.lineno - 1],
                    )
                    for target in _targets(child, module)
                )
            inside = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, in_function or inside)

    visit(ast.parse(source), False)
    return found


def table_targets(module: str, table: str) -> list[str]:
    """The ``"module:name"`` strings in the assignment of ``table`` in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == table and node.value is not None:
            return [
                c.value
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant)
                and isinstance(c.value, str)
                and re.fullmatch(r"leaklib(\.\w+)+:\w+", c.value)
            ]
    raise AssertionError(f"{module} defines no {table}")


def _table_imports() -> list[Import]:
    """The command table's entries as imports of ``leaklib.cli``, so the circle check sees them.

    (The backends' table is not counted: ``sources.snapshot`` reads through the snapshot
    store, which opens its backend through that table, a circle that only ever runs lazily.)
    """
    return [
        Import("leaklib.cli", 0, target.partition(":")[0], True, f"COMMANDS: {target!r}", "")
        for target in table_targets("leaklib.cli", "COMMANDS")
    ]


ALL_IMPORTS = [imp for module in MODULES for imp in imports_of(module)] + _table_imports()


def _leaklib_module(target: str) -> str | None:
    """The leaklib module an import names: the longest known prefix of ``target``."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


def import_graph() -> dict[str, dict[str, list[Import]]]:
    graph: dict[str, dict[str, list[Import]]] = {m: {} for m in MODULES}
    for imp in ALL_IMPORTS:
        target = _leaklib_module(imp.target) if imp.target.startswith("leaklib") else None
        if target and target != imp.module:
            graph[imp.module].setdefault(target, []).append(imp)
    return graph


def circles(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            connect(node)
    return found


def _describe_circle(component: list[str], graph: dict[str, dict[str, list[Import]]]) -> str:
    edges = [
        f"    {imp.where} imports {target}"
        for source in component
        for target, imps in graph[source].items()
        if target in component
        for imp in imps
    ]
    return f"  {' <-> '.join(component)}:\n" + "\n".join(edges)


def test_the_checker_resolves_modules_packages_and_names():
    assert {"leaklib", "leaklib.cli", "leaklib.cli.simulate", "leaklib.pipeline.step"} <= set(
        MODULES
    )
    node = ast.parse("from leaklib import gate as g, params").body[0]
    assert _targets(node, "leaklib.cli") == ["leaklib.gate", "leaklib.params"]
    node = ast.parse("from . import simulate").body[0]
    assert _targets(node, "leaklib.cli") == ["leaklib.cli.simulate"]
    node = ast.parse("from leaklib.metrics import CATALOGUE").body[0]
    assert _leaklib_module(_targets(node, "leaklib.gate")[0]) == "leaklib.metrics"


def test_the_checker_finds_a_circle():
    a, b = (Import(m, 1, "", False, "", "") for m in ("a", "b"))
    assert circles({"a": {"b": [a]}, "b": {"a": [b]}, "c": {"a": []}}) == [["a", "b"]]


def test_no_import_circles():
    graph = import_graph()
    found = "\n".join(_describe_circle(component, graph) for component in circles(graph))
    assert not found, "import circles in leaklib:\n" + found


def _in_cli(module: str) -> bool:
    return module == "leaklib.cli" or module.startswith("leaklib.cli.")


def test_only_the_cli_imports_the_cli():
    offending = [
        f"  {imp.where}: {imp.text.strip()}"
        for imp in ALL_IMPORTS
        if not _in_cli(imp.module) and _in_cli(_leaklib_module(imp.target) or "")
    ]
    assert not offending, "library modules importing leaklib.cli:\n" + "\n".join(offending)


def _reason(imp: Import) -> bool:
    """A ``#`` comment beyond linter directives on the import's line or the line above."""
    here = imp.text.partition("#")[2] if "#" in imp.text else ""
    above = imp.above.strip()
    for comment in (here, above[1:] if above.startswith("#") else ""):
        if _DIRECTIVE.sub("", "#" + comment).strip("# ").strip():
            return True
    return False


def _lazy_problems(modules: set[str]) -> list[str]:
    problems = []
    for imp in ALL_IMPORTS:
        if not imp.in_function or imp.module not in modules:
            continue
        top = imp.target.split(".")[0]
        if imp.line == 0:  # loaded by name through its table: the table is the reason
            continue
        if top not in LAZY_ALLOWED:
            problems.append(f"  {imp.where}: {imp.text.strip()}  (move it to the module's top)")
        elif not _reason(imp):
            problems.append(f"  {imp.where}: {imp.text.strip()}  (say why in a # comment)")
    return problems


def test_imports_inside_functions_are_heavy_optional_and_explained():
    problems = _lazy_problems(set(MODULES))
    assert not problems, (
        "imports inside functions must be of a heavy optional dependency "
        f"({', '.join(LAZY_ALLOWED)}) with a # reason:\n" + "\n".join(problems)
    )


def test_modules_loaded_by_name_are_in_a_table_and_exist():
    callers = sorted(
        f"{module}" for module in MODULES if "import_module(" in MODULES[module].read_text()
    )
    assert callers == sorted(TABLES), "importlib.import_module outside the tables' modules"
    problems = []
    for module, table in TABLES.items():
        targets = table_targets(module, table)
        assert targets, f"{module}.{table} lists nothing"
        for target in targets:
            name, _, attribute = target.partition(":")
            if name not in MODULES:
                problems.append(f"  {module}.{table}: {target!r}: no module {name}")
                continue
            defined = {
                getattr(node, "name", None) for node in ast.parse(MODULES[name].read_text()).body
            }
            if attribute not in defined:
                problems.append(f"  {module}.{table}: {target!r}: {name} defines no {attribute}")
    assert not problems, "table entries that load nothing:\n" + "\n".join(problems)


def test_the_command_table_is_checked():
    targets = table_targets("leaklib.cli", "COMMANDS")
    assert "leaklib.cli.params_command:configure" in targets
    assert "leaklib.cli.params_command" in import_graph()["leaklib.cli"]
