"""The questionnaire closing each notebook: registered in nbprune.course.exercises, shown by `questionnaire("NN")`,
every answer opened by `solution("NN.qK")`."""

import nbformat
import pytest

from nbprune.course import exercises
from nbprune.course.exercises import ask, questionnaire, questions_of, solution
from nbprune.course.lab import NOTEBOOKS
from nbprune.course.workbook import notebooks_path


def test_questions_register_once_show_in_order_and_open_their_answers(monkeypatch):
    monkeypatch.setattr(exercises, "QUESTIONS", {})
    for number in (10, 2, 1):
        ask(f"zz.q{number}", f"question {number}?", f"answer **{number}**")
    ask("zz.4", "to think about?", "an answer")
    assert questions_of("zz") == ["zz.q1", "zz.q2", "zz.q10"]  # by number; "zz.4" is not in the questionnaire
    shown = questionnaire("zz")
    assert repr(shown).splitlines() == ['1. question 1? (`solution("zz.q1")`)', '2. question 2? (`solution("zz.q2")`)',
                                        '10. question 10? (`solution("zz.q10")`)']
    assert shown._repr_markdown_() == repr(shown)
    answer = solution("zz.q10")
    assert answer == "answer **10**" and repr(answer) == "answer **10**" and answer._repr_markdown_() == answer
    assert solution("zz.4") == "an answer"
    with pytest.raises(ValueError, match="zz.q1 is registered twice"):
        ask("zz.q1", "again?", "no")
    with pytest.raises(KeyError, match="has no questionnaire"):
        questionnaire("yy")


def questionnaire_notebooks() -> list[str]:
    """Return the workbook notebooks that close with a questionnaire."""
    return [name for name in NOTEBOOKS if any(cell.source.startswith("## Questionnaire") for cell in
                                              nbformat.read(notebooks_path() / f"{name}.ipynb", as_version=4).cells)]


@pytest.mark.parametrize("name", questionnaire_notebooks())
def test_a_questionnaire_has_eight_to_ten_answered_questions_and_its_notebook_shows_it(name):
    number = name[:2]
    keys = questions_of(number)
    assert 8 <= len(keys) <= 10, f"{name}: {len(keys)} questions"
    for key in keys:
        assert len(solution(key).split()) >= 5, f"{key}: answer it in a sentence or more"
    cells = nbformat.read(notebooks_path() / f"{name}.ipynb", as_version=4).cells
    heading = next(index for index, cell in enumerate(cells) if cell.source.startswith("## Questionnaire"))
    assert any(cell.cell_type == "code" and f'questionnaire("{number}")' in cell.source for cell in cells[heading:])
