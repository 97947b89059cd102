"""Each default is written once, in nbprune/config.py: elsewhere a parameter, field or constant named like a setting
holds None (meaning the configuration's default) or reads the configuration, never a literal of its own."""

import ast
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from nbprune.config import SETTINGS, Setting

PACKAGE = Path(__file__).resolve().parents[1] / "nbprune"
ALIASES = {"num_epochs": "epochs", "compensation": "bias_compensation"}  # the reference's and the library's own names
SKIPPED = {
    "config.py": "where every default is declared",
    "standalone": "the exported folder's files, which run with torch alone; export fills in their constants",
}
OWN_VALUES = {  # (file, function or constant) -> why its literals are not the configuration's defaults
    ("teacher.py", "train_teacher"): "the convolutional teacher's own recipe (8 epochs)",
    ("teacher.py", "TeacherRecipe"): "the convolutional teacher's own recipe (lr 3e-3, batches of 128)",
    ("course/primer.py", "primer_network"): "the primer's 2-2-1 ReLU network, worked out by hand in notebook 00",
    ("session.py", "RETAIN"): "the name of a session's retain/ folder, not the retain setting (a file to follow)",
}


class Finding(NamedTuple):
    file: str
    line: int
    setting: str
    text: str
    verdict: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text} {self.verdict} (write None, or read nbprune.config)"


def _setting(name: str) -> Setting | None:
    name = name.lower()
    return SETTINGS.get(ALIASES.get(name, name))


def _literal(node: ast.AST | None, constants: dict[str, Any]) -> tuple[bool, Any]:
    """Return (True, value) when `node` is a literal (or range of literals, or a module constant holding one)."""
    if node is None:
        return False, None
    if isinstance(node, ast.Name) and node.id in constants:
        return True, constants[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords:
        found = [_literal(argument, constants) for argument in node.args]
        if all(ok and isinstance(value, int) for ok, value in found):
            return True, range(*(value for _, value in found))
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _of_its_kind(value: Any, setting: Setting) -> bool:
    """Return whether `value` could be a value of `setting` (a flag named `budget` is not the budget setting)."""
    kind = setting.kind
    if kind in ("int", "iteration"):
        return _whole(value) or isinstance(value, range) or (kind == "iteration" and value == "auto")
    if kind == "float":
        return _whole(value) or isinstance(value, float)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "ints":
        return isinstance(value, (tuple, list, range)) and all(_whole(item) for item in value)
    return isinstance(value, str)


def _equal(value: Any, default: Any) -> bool:
    if isinstance(value, range):  # iterations 0 .. n-1 for a count of n
        return value == range(default) if _whole(default) else tuple(value) == default
    if isinstance(value, list):
        return tuple(value) == default
    return value == default


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    constants = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                and isinstance(statement.targets[0], ast.Name):
            ok, value = _literal(statement.value, {})
            if ok:
                constants[statement.targets[0].id] = value
    return constants


def _bound(targets: list[ast.AST], value: ast.AST) -> list[tuple[str, ast.AST]]:
    """Return (name, value) for each name an assignment binds to its own value expression."""
    pairs = []
    for target in targets:
        if isinstance(target, ast.Name):
            pairs.append((target.id, value))
        elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            pairs += [(item.id, part) for item, part in zip(target.elts, value.elts) if isinstance(item, ast.Name)]
    return pairs


def literal_defaults(source: str, file: str = "<string>", exempt=OWN_VALUES) -> list[Finding]:
    """Return every literal a parameter, field or constant named like a setting holds in `source`, except in the
    functions and constants `exempt` names."""
    tree = ast.parse(source)
    constants = _module_constants(tree)
    findings: list[Finding] = []

    def check(name: str, node: ast.AST | None, where: str, owner: str) -> None:
        setting = _setting(name)
        ok, value = _literal(node, constants)
        if setting is None or not ok or value is None or not _of_its_kind(value, setting) \
                or (Path(file).as_posix(), owner) in exempt:
            return
        verdict = "repeats the configuration's default" if _equal(value, setting.default) else \
            f"disagrees with the configuration's default {setting.default!r}"
        findings.append(Finding(file, node.lineno, setting.name, f"{where} {name}={ast.unparse(node)}", verdict))

    def visit(node: ast.AST, function: str | None, body_of_scope: bool, owner_class: str | None = None) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            name = getattr(node, "name", "<lambda>")
            arguments = node.args
            positional = arguments.posonlyargs + arguments.args
            pairs = [*zip(positional[len(positional) - len(arguments.defaults):], arguments.defaults),
                     *zip(arguments.kwonlyargs, arguments.kw_defaults)]
            for parameter, default in pairs:
                check(parameter.arg, default, f"parameter of {name}():", name)
            for child in ast.iter_child_nodes(node):
                visit(child, name, False)
            return
        if body_of_scope and isinstance(node, ast.Assign):
            for name, value in _bound(node.targets, node.value):
                check(name, value, "constant", name)
        if body_of_scope and isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            where = f"field of {owner_class}:" if owner_class else "field"
            check(node.target.id, node.value, where, owner_class or node.target.id)  # a class's fields: its own
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and isinstance(node.values[0], ast.Name):
            check(node.values[0].id, node.values[-1], f"in {function}(): default by `or`,", function)  # x or 64
        for child in ast.iter_child_nodes(node):
            visit(child, function, isinstance(node, (ast.Module, ast.ClassDef)),
                  node.name if isinstance(node, ast.ClassDef) else None)

    visit(tree, None, True)
    return findings


def package_files() -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py"))
            if not any(part in SKIPPED for part in path.relative_to(PACKAGE).parts)]


def test_the_checker_finds_a_planted_second_default_and_a_disagreeing_one():
    planted = '''
HIDDEN = (256, 64)
class Loader:
    batch_size: int = 64
def schedule(q=0.8, iterations=range(0, 31), criterion=None):
    return q
def train(model, lr=0.5, *, num_epochs=40, patience=None, budget=False, name="MNIST", activation=None):
    step = 0.8
    return SimpleNN(activation=activation or "relu")
'''
    found = {(finding.setting, finding.verdict.split()[0]) for finding in literal_defaults(planted, "planted.py")}
    assert found == {("hidden", "repeats"), ("batch_size", "repeats"), ("q", "repeats"), ("iterations", "repeats"),
                     ("lr", "disagrees"), ("epochs", "repeats"), ("activation", "repeats")}
    assert str(literal_defaults("def f(temperature=2.0): pass", "x.py")[0]).startswith(
        "x.py:1: parameter of f(): temperature=2.0 repeats the configuration's default")
    assert literal_defaults("Q = 0.8\ndef f(q=Q): pass")[0].setting == "q"  # a constant read as a default


def test_no_setting_has_a_second_literal_default_in_the_package():
    findings = [finding for path in package_files()
                for finding in literal_defaults(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))]
    assert not findings, "\n".join(map(str, findings))


def test_every_exemption_is_needed():
    for file, name in OWN_VALUES:
        found = literal_defaults((PACKAGE / file).read_text(encoding="utf-8"), file, exempt={})
        assert any(f"{name}" in finding.text for finding in found), f"{file}: {name} holds no setting's literal"


def test_the_standalone_models_placeholders_are_the_configurations_defaults():
    from nbprune.standalone import model as standalone

    assert (standalone.HIDDEN, standalone.ACTIVATION) == (SETTINGS["hidden"].default, SETTINGS["activation"].default)


def test_library_functions_without_arguments_follow_the_configuration():
    from nbprune import GeneratePruneData, SimpleNN
    from nbprune.course import schedule

    assert tuple(layer.out_features for layer in SimpleNN().linears[:-1]) == SETTINGS["hidden"].default
    assert SimpleNN().activation == SETTINGS["activation"].default
    steps = GeneratePruneData().data
    assert steps == schedule(SETTINGS["hidden"].default, SETTINGS["q"].default, range(SETTINGS["iterations"].default))
    assert steps[0].retained == (256, 64) and steps[1].retained == (205, 51)  # the reference workflow's schedule


@pytest.mark.parametrize("setting, registry", [("bias_compensation", "COMPENSATIONS"),
                                               ("normalise", "NORMALISATIONS")])
def test_choice_lists_are_the_registries(setting, registry):
    from nbprune import config

    assert SETTINGS[setting].choices == getattr(config, registry)
