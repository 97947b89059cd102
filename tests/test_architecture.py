"""The package's import graph, read from the source: no circle, and no import from a lower layer to a higher one.

Every `import` and `from ... import` counts, at module level or inside a function (a lazy import is still an
arrow). Names loaded by string through importlib (the package root's and the exercises' load-on-first-use) are
not arrows: the root only lists what it exports.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

PACKAGE = Path(__file__).resolve().parent.parent / "nbprune"
STANDALONE = "nbprune.standalone"  # copied beside an exported model and run alone: it imports nothing of nbprune

# Lowest first. A module may import from its own layer and the layers below it, never from a layer above.
# An entry ending in ".*" holds a package's submodules (the package's own __init__ is placed by its plain name).
LAYERS = [
    # the method's core: what a user imports to prune a network
    ("the package root and its errors", {"nbprune", "nbprune.errors"}),
    ("the datasets declared", {"nbprune.datasets"}),
    ("settings and small tools", {"nbprune.config", "nbprune.progress", "nbprune.interval"}),
    ("files: atomic writes, tables, figures, locks", {"nbprune.files", "nbprune.locks"}),
    ("data", {"nbprune.datafile", "nbprune.data"}),
    ("model files", {"nbprune.modelfile"}),
    ("the network and its layer kinds", {"nbprune.model", "nbprune.layers", "nbprune.architectures",
                                          "nbprune.networkfile"}),
    ("scoring and surgery", {"nbprune.criteria", "nbprune.prune", "nbprune.channels"}),
    ("training", {"nbprune.epoch", "nbprune.fast_mlp", "nbprune.evaluation", "nbprune.training", "nbprune.teacher"}),
    ("the schedule", {"nbprune.retention"}),
    ("the session folder", {"nbprune.runs", "nbprune.session"}),
    ("the pruning loop", {"nbprune.plan", "nbprune.iterative"}),
    ("results", {"nbprune.report", "nbprune.export"}),
    # the course's wing: what the notebooks import to teach it, over the core
    ("the course's package", {"nbprune.course"}),
    ("the course's tools", {"nbprune.course.lab", "nbprune.course.primer", "nbprune.course.diagnostics",
                            "nbprune.course.exercises"}),
    ("the course's studies, views and exercises", {"nbprune.course.compare", "nbprune.course.conv",
                                                  "nbprune.course.figures",
                                                  "nbprune.course.widgets", "nbprune.course.exercises.*"}),
    ("the course's workbook", {"nbprune.course.workbook"}),
    # the doors over both
    ("the sweep and the command line", {"nbprune.sweeps", "nbprune.sweeps.*", "nbprune.cli"}),
]


class Edge(NamedTuple):
    importer: str
    imported: str
    where: str  # the line of the import statement in the importer

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} ({self.where})"


def module_name(file: Path) -> str:
    """Return the dotted name of a file of the package, e.g. nbprune/sweeps/work.py -> nbprune.sweeps.work."""
    parts = list(file.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    """Return every module of the package by dotted name."""
    return {module_name(file): file for file in sorted(PACKAGE.rglob("*.py"))}


def imported_names(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """Return the dotted names an import statement loads: `from x import y` loads x.y where that is a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: one dot is the importing module's own package
        base = package.split(".")[:len(package.split(".")) - node.level + 1]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    return [f"{origin}.{alias.name}" for alias in node.names]


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """Return one edge per import of a package module by another, module-level and function-level alike."""
    edges = []
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = set()
            for dotted in imported_names(node, package):
                while dotted and dotted not in modules:  # nbprune.files.save_figure is a name in nbprune.files
                    dotted = dotted.rpartition(".")[0]
                if dotted and dotted != name:
                    targets.add(dotted)
            where = f"line {node.lineno}"
            edges += [Edge(name, target, where) for target in sorted(targets)]
    return edges


def layer_of(module: str, layers=LAYERS) -> int | None:
    """Return the index of the layer that holds `module` (None when no layer does)."""
    for index, (_, members) in enumerate(layers):
        if module in members or any(entry.endswith(".*") and module.startswith(entry[:-1]) for entry in members):
            return index
    return None


def upward_edges(edges: list[Edge], layers=LAYERS) -> list[Edge]:
    """Return the imports that go from a lower layer to a higher one."""
    return [edge for edge in edges if layer_of(edge.importer, layers) < layer_of(edge.imported, layers)]


def find_cycle(edges: list[Edge]) -> list[Edge]:
    """Return the edges of one import circle, or [] when the graph has none."""
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, []).append(edge)
    state: dict[str, str] = {}  # "open" while on the current path, "done" once all its imports are explored
    path: list[Edge] = []

    def visit(module: str) -> list[Edge]:
        state[module] = "open"
        for edge in graph.get(module, []):
            if state.get(edge.imported) == "open":
                start = next((i for i, e in enumerate(path) if e.importer == edge.imported), len(path))
                return path[start:] + [edge]
            if edge.imported not in state:
                path.append(edge)
                if cycle := visit(edge.imported):
                    return cycle
                path.pop()
        state[module] = "done"
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return []


def package_graph() -> tuple[dict[str, Path], list[Edge]]:
    modules = {name: file for name, file in package_modules().items() if not name.startswith(STANDALONE)}
    return modules, import_edges(modules)


def test_the_graph_counts_relative_absolute_and_function_level_imports(tmp_path):
    files = {"__init__.py": "", "a.py": "from . import b\nfrom .b import f\nimport os\n",
             "b.py": "def f():\n    import pkg.c as c\n    return c\n", "c.py": "from pkg import __version__\n"}
    for name, text in files.items():
        (tmp_path / "pkg").mkdir(exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    modules = {"pkg": tmp_path / "pkg" / "__init__.py",
               **{f"pkg.{name[:-3]}": tmp_path / "pkg" / name for name in files if name != "__init__.py"}}
    assert [str(edge) for edge in import_edges(modules)] == [
        "pkg.a -> pkg.b (line 1)", "pkg.a -> pkg.b (line 2)", "pkg.b -> pkg.c (line 2)", "pkg.c -> pkg (line 1)"]


def test_the_package_has_no_import_circle():
    _, edges = package_graph()
    cycle = find_cycle(edges)
    assert not cycle, "import circle: " + "; ".join(map(str, cycle))


def test_every_module_has_a_layer():
    modules, _ = package_graph()
    unplaced = sorted(name for name in modules if layer_of(name) is None)
    assert not unplaced, f"modules in no layer of LAYERS (tests/test_architecture.py): {', '.join(unplaced)}"


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    _, edges = package_graph()
    upward = upward_edges(edges)
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(
        f"{edge} [{LAYERS[layer_of(edge.importer)][0]} imports {LAYERS[layer_of(edge.imported)][0]}]"
        for edge in upward)


def test_the_standalone_files_import_nothing_of_nbprune():
    standalone = {name: file for name, file in package_modules().items() if name.startswith(STANDALONE)}
    assert standalone
    edges = import_edges(package_modules())
    assert not [str(edge) for edge in edges if edge.importer in standalone]


def test_the_checks_catch_a_circle_and_an_upward_import():
    layers = [("low", {"a"}), ("high", {"b", "c"})]
    edges = [Edge("b", "a", "line 1"), Edge("a", "c", "line 2"), Edge("c", "b", "line 3")]
    assert [str(edge) for edge in upward_edges(edges, layers)] == ["a -> c (line 2)"]
    assert {edge.where for edge in find_cycle(edges)} == {"line 1", "line 2", "line 3"}
    assert find_cycle(edges[:2]) == []


# --- the method's core stays lean (issue 28) ------------------------------------------------------------------------
DOORS_AND_COURSE = ("nbprune.course", "nbprune.sweeps", "nbprune.cli")
CORE = [name for name in package_graph()[0] if not name.startswith(DOORS_AND_COURSE)]
MAX_PARAMETERS = 8
REFERENCE_SHAPED = {("nbprune.training", "train")}  # train(model, train_loader, test_loader, lr, num_epochs, ...)


def named_parameters(function: ast.FunctionDef) -> list[str]:
    """Return a function's parameters by name, without self/cls, *args and **kwargs."""
    arguments = function.args
    return [argument.arg for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)
            if argument.arg not in ("self", "cls")]


def test_no_function_of_the_core_takes_more_than_eight_parameters_but_the_reference_shaped_train():
    modules = package_modules()
    crowded = [f"{module}.{node.name} ({len(named_parameters(node))})" for module in CORE
               for node in ast.walk(ast.parse(modules[module].read_text(encoding="utf-8")))
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
               and len(named_parameters(node)) > MAX_PARAMETERS and (module, node.name) not in REFERENCE_SHAPED]
    assert not crowded, f"functions with more than {MAX_PARAMETERS} parameters: {', '.join(crowded)}"


def test_the_pruning_loop_is_a_small_class():
    tree = ast.parse(package_modules()["nbprune.iterative"].read_text(encoding="utf-8"))
    loop = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "IterativePruning")
    assert loop.end_lineno - loop.lineno + 1 <= 150


REFERENCE_NAMES = ("SimpleNN", "load_data", "GeneratePruneData", "IterativePruning", "train", "evaluate",
                   "concatenate", "load_pruned_model")


def test_the_root_exports_the_methods_api_in_at_most_forty_names_each_with_a_docstring():
    import nbprune

    assert len(nbprune.__all__) <= 40, nbprune.__all__
    assert set(REFERENCE_NAMES) <= set(nbprune.__all__)  # the reference workflow's names, importable as before
    undocumented = [name for name in nbprune.__all__ if not (getattr(nbprune, name).__doc__ or "").strip()]
    assert not undocumented, f"names without a docstring for help(): {undocumented}"
    assert not any(getattr(nbprune, name).__module__.startswith("nbprune.course") for name in nbprune.__all__)


def test_the_course_gives_a_notebook_every_name_it_imports():
    """Every `from nbprune.course import ...` of a notebook resolves (the course re-exports the core's names that
    notebooks use, so a notebook imports from one place)."""
    import json
    import re

    import nbprune.course

    notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    wanted = set()
    for path in notebooks.glob("*.ipynb"):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            for match in re.finditer(r"from nbprune\.course import (\([^)]*\)|[^\n]*)", source):
                wanted |= {name for name in re.split(r"[\s,()\\]+", match.group(1)) if name}
    assert {"write_text_atomic", "SimpleNN", "questionnaire"} <= wanted  # names on every line of a wrapped import
    assert not [name for name in wanted if not hasattr(nbprune.course, name)]
    assert all(getattr(nbprune.course, name) is not None for name in nbprune.course.__all__)  # each loads
    assert not [path.name for path in notebooks.glob("*.ipynb") if "from nbprune import" in path.read_text()]


def test_no_dataset_shape_is_written_outside_the_declarations():
    """784, 28 and MNIST's ten classes are facts of a dataset: only nbprune.datasets may write them (the standalone
    files' constants are placeholders an export fills in)."""
    found = []
    for module, file in package_graph()[0].items():
        if module == "nbprune.datasets":
            continue
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and type(node.value) is int and node.value in (784, 28):
                found.append(f"{module} line {node.lineno}: {node.value}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "range" and \
                    [getattr(a, "value", None) for a in node.args] == [10]:
                found.append(f"{module} line {node.lineno}: range(10)")
    assert not found, "dataset shapes written outside nbprune.datasets: " + "; ".join(found)
