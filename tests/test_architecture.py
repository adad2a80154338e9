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
  import graph;
- no function (method, nested function) is over 60 lines, from its ``def`` to its last line.
"""

from __future__ import annotations

import ast
import re
import textwrap
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
# leaklib modules a function may import on first use, for what they load in turn.
LAZY_LEAKLIB = (
    "leaklib.plots",  # matplotlib and scikit-learn: `leak run`'s runner draws one chart, at the end
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
        if top not in LAZY_ALLOWED and imp.target not in LAZY_LEAKLIB:
            problems.append(f"  {imp.where}: {imp.text.strip()}  (move it to the module's top)")
        elif not _reason(imp):
            problems.append(f"  {imp.where}: {imp.text.strip()}  (say why in a # comment)")
    return problems


def test_imports_inside_functions_are_heavy_optional_and_explained():
    problems = _lazy_problems(set(MODULES))
    assert not problems, (
        "imports inside functions must be of a heavy optional dependency "
        f"({', '.join(LAZY_ALLOWED + LAZY_LEAKLIB)}) with a # reason:\n" + "\n".join(problems)
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


# --- the layers ---------------------------------------------------------------------------------

# The layers, bottom first, each with the modules in it (a name stands for the module and every
# module under it). A module imports modules of its own layer or of a layer below, never above.
# docs/ARCHITECTURE.md's drawing is generated from this list (`python -m tests.test_architecture`)
# and checked against it here.
LAYERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "facts",
        "defined once; import nothing above",
        (
            "leaklib",
            "errors",
            "paths",
            "params",
            "steps",
            "metrics",
            "estimators",
            "backends",
            "gcp",
            "lineage",
            "sampling",
            "kernelspec",
        ),
    ),  # fmt: skip
    (
        "records and stores",
        "base + one module per backend; runs writes the run record",
        ("runs", "run_record", "snapshots", "metadata", "sources", "sinks"),
    ),
    (
        "step logic",
        "what the notebooks call",
        (
            "schema",
            "features",
            "splits",
            "leak_events",
            "sensor_faults",
            "modelling",
            "models",
            "evaluation",
            "bootstrap",
            "plots",
            "tracking",
            "model_registry",
            "champion",
            "gate",
            "reports",
            "score_events",
            "scoring",
            "score_history",
            "parameter_cells",
            "simulate",
            "leak_location",
        ),
    ),  # fmt: skip
    (
        "pipeline",
        "papermill, the run's kernel, the step cache; notebooks open steps with pipeline.step",
        ("pipeline",),
    ),
    ("edge", "the command line and the HTTP API", ("cli", "serve")),
)
DOCS = PACKAGE.parent / "docs" / "ARCHITECTURE.md"
DRAWING_START = "<!-- layers: generated from tests/test_architecture.py LAYERS -->"
DRAWING_END = "<!-- /layers -->"


def layer_of(module: str) -> int | None:
    """The index in LAYERS of ``module``: the layer whose name is its longest prefix."""
    best: tuple[int, int] | None = None
    for index, (_, _, names) in enumerate(LAYERS):
        for name in names:
            full = "leaklib" if name == "leaklib" else f"leaklib.{name}"
            if (module == full or module.startswith(full + ".")) and (
                best is None or len(full) > best[1]
            ):
                best = (index, len(full))
    return None if best is None else best[0]


def upward_imports(graph: dict[str, dict[str, list[Import]]]) -> list[str]:
    found = []
    for source, targets in graph.items():
        for target, imps in targets.items():
            low, high = layer_of(source), layer_of(target)
            if low is not None and high is not None and high > low:
                found.extend(
                    f"  {imp.where} ({LAYERS[low][0]}) imports {target} ({LAYERS[high][0]})"
                    for imp in imps
                )
    return found


def layer_drawing() -> str:
    """The layers as docs/ARCHITECTURE.md draws them, top first."""
    lines = ["```"]
    for index, (name, about, names) in reversed(list(enumerate(LAYERS))):
        lines.append(f"{name}: {about}")
        lines.extend(f"    {row}" for row in _wrap(list(names), 84))
        if index:
            lines += ["        |", "        v"]
    return "\n".join([*lines, "```"])


def _wrap(words: list[str], width: int) -> list[str]:
    rows: list[str] = []
    for word in words:
        if rows and len(rows[-1]) + 2 + len(word) <= width:
            rows[-1] += f"  {word}"
        else:
            rows.append(word)
    return rows


def test_every_module_is_in_one_layer():
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add them to LAYERS): {', '.join(unplaced)}"


def test_nothing_imports_upwards():
    found = upward_imports(import_graph())
    assert not found, "imports from a lower layer to a higher one:\n" + "\n".join(found)


def test_the_checker_sees_an_upward_import():
    bad = Import("leaklib.params", 1, "leaklib.runs", False, "", "")
    graph = {"leaklib.params": {"leaklib.runs": [bad]}, "leaklib.runs": {}}
    assert upward_imports(graph) == [
        "  leaklib.params:1 (facts) imports leaklib.runs (records and stores)"
    ]


def test_the_docs_draw_the_layers_from_the_list():
    text = DOCS.read_text()
    assert DRAWING_START in text and DRAWING_END in text, f"{DOCS} lost its layer markers"
    drawn = text.split(DRAWING_START, 1)[1].split(DRAWING_END, 1)[0].strip()
    assert drawn == layer_drawing(), (
        f"{DOCS}'s layer drawing differs from LAYERS: run python -m tests.test_architecture"
    )


# --- backends and pyplot ------------------------------------------------------------------------

BACKEND_KINDS = ("snapshots", "metadata", "sources", "sinks")
# what any backend may import besides its own kind's base: the shared helpers
SHARED_HELPERS = ("leaklib.errors", "leaklib.paths", "leaklib.gcp", "leaklib.params",
                  "leaklib.sampling")  # fmt: skip
# a backend that reads through another kind, and why (each a dependency by design)
ACROSS = {
    ("leaklib.sources.snapshot", "leaklib.snapshots"): "a recorded snapshot is read through "
    "the snapshot store",
    ("leaklib.sinks.bigquery", "leaklib.sources.bigquery"): "the BigQuery sink shares the "
    "source's table-id rules, query parameters and client",
}


def backend_imports(graph: dict[str, dict[str, list[Import]]]) -> list[str]:
    found = []
    for module, targets in graph.items():
        parts = module.split(".")
        if len(parts) != 3 or parts[1] not in BACKEND_KINDS or parts[2] == "base":
            continue
        own_base = f"leaklib.{parts[1]}.base"
        for target, imps in targets.items():
            if target == own_base or target in SHARED_HELPERS or (module, target) in ACROSS:
                continue
            found.extend(f"  {imp.where} imports {target}" for imp in imps)
    return found


def test_backends_import_only_their_base_and_shared_helpers():
    found = backend_imports(import_graph())
    assert not found, (
        f"a backend imports, of leaklib, only its kind's base and {', '.join(SHARED_HELPERS)}:\n"
        + "\n".join(found)
    )


def test_the_checker_sees_a_backend_importing_another():
    bad = Import("leaklib.snapshots.gcs", 1, "leaklib.metadata.firestore", False, "", "")
    graph = {"leaklib.snapshots.gcs": {"leaklib.metadata.firestore": [bad]}}
    assert backend_imports(graph) == [
        "  leaklib.snapshots.gcs:1 imports leaklib.metadata.firestore"
    ]


def pyplot_outside_plots(imports: list[Import]) -> list[str]:
    return [
        f"  {imp.where}: {imp.text.strip()}"
        for imp in imports
        if imp.target.startswith("matplotlib.pyplot") and imp.module != "leaklib.plots"
    ]


def test_pyplot_only_in_plots():
    found = pyplot_outside_plots(ALL_IMPORTS)
    assert not found, "matplotlib.pyplot imported outside leaklib.plots:\n" + "\n".join(found)


def test_the_checker_sees_pyplot_outside_plots():
    imports = imports_of("leaklib.plots")
    assert any(i.target.startswith("matplotlib.pyplot") for i in imports)
    moved = [Import("leaklib.scoring", 3, "matplotlib.pyplot", False, "import pyplot", "")]
    assert pyplot_outside_plots(moved) == ["  leaklib.scoring:3: import pyplot"]


# --- function length ----------------------------------------------------------------------------

MAX_FUNCTION_LINES = 60  # from the `def` line (decorators aside) to the last, docstring included


def function_lengths(module: str, source: str | None = None) -> dict[str, int]:
    """Each function's length in lines, as ``module:name`` (``Class.method``, ``outer.inner``)."""
    tree = ast.parse(MODULES[module].read_text() if source is None else source)
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                lengths[f"{module}:{name}"] = child.end_lineno - child.lineno + 1
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return lengths


def long_functions(lengths: dict[str, int]) -> list[str]:
    return [
        f"  {name} is {n} lines" for name, n in sorted(lengths.items()) if n > MAX_FUNCTION_LINES
    ]


def all_function_lengths() -> dict[str, int]:
    return {name: n for module in MODULES for name, n in function_lengths(module).items()}


def test_no_function_is_over_60_lines():
    found = long_functions(all_function_lengths())
    assert not found, (
        f"functions over {MAX_FUNCTION_LINES} lines (split each into named phases):\n"
        + "\n".join(found)
    )


def test_the_checker_sees_a_long_function():
    body = "".join(f"    x{i} = {i}\n" for i in range(59))  # with its def: 60 lines
    grown = textwrap.indent(f"def grown(self):\n{body}    return 0\n", "    ")  # 61
    source = f"def short():\n{body}\n\nclass Table:\n{grown}"
    lengths = function_lengths("leaklib.scoring", source)
    assert lengths["leaklib.scoring:short"] == 60
    assert long_functions(lengths) == ["  leaklib.scoring:Table.grown is 61 lines"]


if __name__ == "__main__":  # rewrite docs/ARCHITECTURE.md's layer drawing from LAYERS
    text = DOCS.read_text()
    head, rest = text.split(DRAWING_START, 1)
    tail = rest.split(DRAWING_END, 1)[1]
    DOCS.write_text(f"{head}{DRAWING_START}\n{layer_drawing()}\n{DRAWING_END}{tail}")
