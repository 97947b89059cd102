"""Exercises of the course: each has a question, a checker that says right or wrong and why, and a solution.

A notebook's exercise cell reads `check("00.2", my_answer)`; `solution("00.2")` returns the answer the checker
accepts (a test runs every solution through its checker). Checkers that need the student's own model or session
take it as keyword arguments, and so does the solution: `check("04.1", 17, model=dense)`.
Each notebook's exercises live in a module of this package, named for the notebook's topic, and register here.
Questions answered in words (a notebook's closing questionnaire, "00.q1", and its "to think about" questions) register
with `ask`; `solution(key)` shows their answer too, and `questionnaire("00")` shows a notebook's questionnaire.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable

from ...errors import ConfigError

# notebook -> the module holding its exercises (loaded on first use, so importing nbprune stays light)
MODULES = {"00": "intervals", "01": "data", "02": "model", "03": "retention", "04": "pruning", "05": "testing",
           "06": "deploy", "07": "compare", "08": "conv"}


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one answer: right or wrong, and why."""

    right: bool
    message: str

    def __bool__(self) -> bool:
        return self.right

    def __str__(self) -> str:
        return f"{'right' if self.right else 'not yet'}: {self.message}"

    __repr__ = __str__  # what a saved notebook shows as the cell's plain-text output

    def _repr_markdown_(self) -> str:
        return f"{'✅ **right**' if self.right else '❌ **not yet**'}: {self.message}"


@dataclass(frozen=True)
class Exercise:
    """One exercise: its key ("04.2"), its question, its checker and its solution."""

    key: str
    question: str
    checker: Callable[..., Verdict]
    solver: Callable[..., Any]


EXERCISES: dict[str, Exercise] = {}


def exercise(key: str, question: str, solver: Callable[..., Any]):
    """Register the decorated function as the checker of exercise `key`, with its question and its solution."""
    def register(checker: Callable[..., Verdict]) -> Callable[..., Verdict]:
        if key in EXERCISES:
            raise ValueError(f"exercise {key} is registered twice")
        EXERCISES[key] = Exercise(key, question, checker, solver)
        return checker
    return register


class UnknownExercise(ConfigError, LookupError):
    """An exercise key that names no exercise."""


def _load(key: str) -> Exercise:
    if isinstance(key, str):
        notebook = key.split(".", 1)[0]
        if notebook in MODULES:
            importlib.import_module(f".{MODULES[notebook]}", __name__)
    if not isinstance(key, str) or key not in EXERCISES:
        for module in MODULES.values():  # name them all
            importlib.import_module(f".{module}", __name__)
        raise UnknownExercise(f"no exercise {key!r}: expected a key like '04.2' (known: "
                              f"{', '.join(sorted(EXERCISES))}).")
    return EXERCISES[key]


def check(key: str, answer: Any, **context: Any) -> Verdict:
    """Return whether `answer` solves exercise `key`, and why (a wrong key or an unreadable answer is a verdict
    too, never an exception)."""
    try:
        found = _load(key)
    except UnknownExercise as error:
        return Verdict(False, str(error))
    if answer is None:
        return Verdict(False, f"no answer yet. {found.question}")
    try:
        return found.checker(answer, **context)
    except (TypeError, ValueError, ArithmeticError) as error:  # OverflowError: 10**400 or inf as a whole number
        return Verdict(False, f"the answer could not be read ({error}); {found.question}")


def solution(key: str, **context: Any) -> Any:
    """Return the answer to exercise `key` that its checker accepts (or the answer to question `key`, see `ask`)."""
    if isinstance(key, str):
        _load_all(key.split(".", 1)[0])
        if key in QUESTIONS:
            return QUESTIONS[key].answer
    return _load(key).solver(**context)


def question(key: str) -> str:
    """Return the question of exercise `key`."""
    return _load(key).question


def exercises_of(notebook: str) -> list[str]:
    """Return the keys of one notebook's exercises ("04"), in order."""
    _load_all(notebook)
    return sorted(key for key in EXERCISES if key.startswith(f"{notebook}."))


def _load_all(notebook: str) -> None:
    if notebook in MODULES:
        importlib.import_module(f".{MODULES[notebook]}", __name__)


# --- questions answered in words: the questionnaire closing each notebook (fastbook's habit) ------------------------
class Answer(str):
    """A question's answer: text that a notebook shows as markdown."""

    __repr__ = str.__str__

    def _repr_markdown_(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Question:
    """A question answered in words: its key ("00.q1"), its text and its answer."""

    key: str
    text: str
    answer: Answer


QUESTIONS: dict[str, Question] = {}


def ask(key: str, text: str, answer: str) -> None:
    """Register question `key` with its answer: "NN.qK" for notebook NN's questionnaire, "NN.K" for a "to think
    about" question among its exercises."""
    if key in QUESTIONS or key in EXERCISES:
        raise ValueError(f"question {key} is registered twice")
    QUESTIONS[key] = Question(key, text, Answer(answer))


def questions_of(notebook: str) -> list[str]:
    """Return the keys of one notebook's questionnaire ("00" -> "00.q1", "00.q2", ...), in order."""
    _load_all(notebook)
    keys = [key for key in QUESTIONS if key.startswith(f"{notebook}.q")]
    return sorted(keys, key=lambda key: int(key.rsplit("q", 1)[1]))


class Questionnaire:
    """A notebook's questionnaire, numbered, each question with the call that opens its answer."""

    def __init__(self, notebook: str):
        self.keys = questions_of(notebook)
        if not self.keys:
            raise KeyError(f"notebook {notebook!r} has no questionnaire: expected one of {', '.join(MODULES)}.")

    def lines(self) -> list[str]:
        return [f"{key[key.index('q') + 1:]}. {QUESTIONS[key].text} (`solution(\"{key}\")`)" for key in self.keys]

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_markdown_(self) -> str:
        return "\n".join(self.lines())


def questionnaire(notebook: str) -> Questionnaire:
    """Return notebook `notebook`'s questionnaire ("00"), shown as a numbered list; `solution("00.q1")` answers."""
    return Questionnaire(notebook)

# --- helpers for checkers -----------------------------------------------------------------------------------------
def _near(value: float, expected: float, tolerance: float) -> bool:
    if not math.isfinite(expected):  # an infinite bound is met by that infinity only, not by every number
        return value == expected
    return math.isfinite(value) and abs(value - expected) <= tolerance * max(1.0, abs(expected))


def whole(value: Any) -> int:
    """Return `value` as a whole number, refusing a fraction (26.9 is not 26) and what is not a number."""
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is not a whole number")
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("+-").isdigit() or len(value) > 40:
            raise ValueError(f"{value!r} is not a whole number")
        return int(value)
    number = float(value)  # OverflowError for 10**400, ValueError for text
    if not math.isfinite(number) or not number.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def close(answer: Any, expected: float, what: str, why: str = "", hint: str = "", tolerance: float = 1e-3) -> Verdict:
    """Return right when the number `answer` is within `tolerance` (relative; absolute near 0) of `expected`; `why`
    explains a right answer, `hint` helps with a wrong one (without giving it away)."""
    value = float(answer)
    if _near(value, expected, tolerance):
        return Verdict(True, f"{what} is {expected:g}. {why}".strip())
    return Verdict(False, f"{what} is not {value:g}. {hint}".strip())


def same_interval(answer: Any, lower: float, upper: float, what: str, why: str = "", hint: str = "",
                  tolerance: float = 1e-3) -> Verdict:
    """Return right when `answer` is a pair (lower, upper) equal to the expected bounds."""
    low, high = (float(v) for v in answer)
    if _near(low, lower, tolerance) and _near(high, upper, tolerance):
        return Verdict(True, f"{what} is [{lower:g}, {upper:g}]. {why}".strip())
    return Verdict(False, f"{what} is not [{low:g}, {high:g}]. {hint}".strip())
