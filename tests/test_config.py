"""One configuration: every setting declared once, checked, and reaching every door (API, CLI, workbook)."""

import dataclasses
import math
from pathlib import Path

import pytest

from nbprune import RunConfig
from nbprune.config import TrainConfig
from nbprune.errors import ConfigError
from nbprune.cli import build_parser
from nbprune.config import CONTROLS, RUN_SETTINGS, SETTINGS, Controls, parse_settings
from nbprune.datasets import DATASETS, DEFAULT, MNIST
from nbprune.model import ACTIVATIONS
from nbprune.criteria import CRITERIA
from nbprune.course.workbook import NOT_IN_WORKBOOK, NOTEBOOK_PARAMETERS, PARAMETERS, PROFILES


def test_every_default_passes_its_own_check_and_the_defaults_are_the_reference_workflows_method():
    config = RunConfig()
    for name, setting in SETTINGS.items():
        assert setting.check(setting.default) == setting.default, name
    assert (config.model.hidden, config.model.activation, config.schedule.q) == ((256, 64), "relu", 0.8)
    assert (config.prune.criterion, config.train.lr, config.data.batch_size) == ("interval_adjoint", 1e-3, 64)


def test_flat_names_round_trip_through_replace_and_to_dict():
    config = RunConfig.from_flat(lr=3e-3, hidden=[300, 100, 50], activation="sigmoid", dataset="FashionMNIST")
    assert config.train.lr == 3e-3 and config.model.hidden == (300, 100, 50)
    assert RunConfig.from_dict(config.to_dict()) == config
    assert config.flat()["dataset"] == "FashionMNIST" and config.to_dict()["hidden"] == [300, 100, 50]
    assert config.replace(seed=4).seed == 4 and config.seed == 0  # frozen: a replace is a new configuration
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1
    with pytest.raises(ConfigError, match="unknown setting.*epoch\\b.*expected any of"):
        RunConfig.from_flat(epoch=3)


def test_an_unknown_recipe_is_refused_naming_the_choices():
    with pytest.raises(ConfigError,
                       match="recipe='fast' is not allowed: expected one of default, reference, onecycle "):
        TrainConfig(recipe="fast")
    with pytest.raises(ConfigError, match="recipe='seed' is not allowed"):  # the old name is not an alias any more
        RunConfig.from_dict({**RunConfig().to_dict(), "recipe": "seed"})


@pytest.mark.parametrize("name, value, expected", [
    ("lr", -1.0, "lr=-1.0 is not allowed: expected a number above 0 to 10"),
    ("lr", 0, "lr=0 is not allowed"),
    ("lr", math.nan, "lr=nan is not allowed"),
    ("lr", math.inf, "lr=inf is not allowed"),
    ("seed", 10 ** 20, "seed=100000000000000000000 is not allowed: expected a whole number from 0 to 4294967295"),
    ("seed", -1, "seed=-1 is not allowed"),
    ("hidden", (1_000_000_000_000, 64), "hidden=.* is not allowed: expected 1 to 16 whole numbers from 1 to 16384"),
    ("hidden", (), "hidden=() is not allowed"),
    ("hidden", tuple(range(1, 20)), "expected 1 to 16"),
    ("threads", 100_000, "threads=100000 is not allowed: expected a whole number from 1 to 256"),
    ("iterations", 10 ** 12, "iterations=1000000000000 is not allowed: expected a whole number from 1 to 1000"),
    ("q", 1.0, "q=1.0 is not allowed: expected a number above 0 below 1"),
    ("criterion", "oracle", "criterion='oracle' is not allowed: expected one of interval_adjoint"),
    ("dataset", "CIFAR10", "expected one of MNIST, FashionMNIST"),
    ("activation", "tanh", "expected one of relu, sigmoid"),
    ("distill", "yes", "distill='yes' is not allowed: expected true or false"),
    ("device", "banana", "device='banana' is not allowed: expected cpu, cuda, cuda:N or auto"),
    ("device", "", "device='' is not allowed"),
    ("device", "meta", "device='meta' is not allowed"),
    ("device", "mps", "device='mps' is not allowed"),
    ("epochs", 2.5, "epochs=2.5 is not allowed: expected a whole number"),
    ("subset", 0, "subset=0 is not allowed: expected a whole number from 1 to 10000000 or None"),
])
def test_bad_values_name_the_setting_the_value_and_what_is_expected(name, value, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", "\\(").replace(")", "\\)").replace("?", "\\?")):
        RunConfig.from_flat({name: value})


@pytest.mark.parametrize("text, value", [("256,64", (256, 64)), ("[300, 100, 50]", (300, 100, 50)), ("12", (12,)),
                                         ("256 64", (256, 64))])
def test_hidden_sizes_parse_from_any_common_spelling(text, value):
    assert SETTINGS["hidden"].parse(text) == value


@pytest.mark.parametrize("name, text, expected", [
    ("hidden", "9" * 400, "hidden='999"), ("hidden", "1e400", "hidden='1e400' is not allowed"),
    ("lr", "1e400", "lr='1e400' is not allowed"), ("seed", "1" * 30, "seed='1111"),
    ("begin_itr", "later", "begin_itr='later' is not allowed: expected a whole number from 0 to 1000 or 'auto'"),
    ("distill", "maybe", "expected true or false"), ("epochs", "None", "epochs='None' is not allowed"),
])
def test_command_line_text_is_parsed_without_building_huge_numbers(name, text, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", "\\(").replace("'", "'")):
        SETTINGS[name].parse(text)


def test_parse_settings_types_each_value():
    values = parse_settings([("epochs", "3"), ("q", "0.7"), ("hidden", "128,32"), ("end_itr", "None"),
                             ("begin_itr", "auto"), ("session_dir", "/tmp/s"), ("criterion", "magnitude"),
                             ("distill", "false"), ("chosen_itr", "4"), ("data_root", "7")])
    assert values == {"epochs": 3, "q": 0.7, "hidden": (128, 32), "end_itr": None, "begin_itr": "auto",
                      "session_dir": "/tmp/s", "criterion": "magnitude", "distill": False, "chosen_itr": 4,
                      "data_root": "7"}


def test_the_declarations_agree_with_the_registries_they_name():
    assert SETTINGS["criterion"].choices == tuple(CRITERIA)
    assert SETTINGS["activation"].choices == tuple(ACTIVATIONS)
    assert SETTINGS["dataset"].kind == "dataset" and SETTINGS["dataset"].default == DEFAULT.name
    assert all(SETTINGS["dataset"].check(name) == name for name in DATASETS) and DATASETS["MNIST"] is MNIST
    assert set(RUN_SETTINGS).isdisjoint(CONTROLS)
    assert Controls().begin_itr == 0 and TrainConfig().epochs == RunConfig().train.epochs == 40


def _options(parser, command):
    sub = next(action for action in parser._actions if action.dest == "command").choices[command]
    return {action.dest: action for action in sub._actions}


def test_prune_takes_every_run_setting_and_says_its_default():
    options = _options(build_parser(), "prune")
    for name, setting in RUN_SETTINGS.items():
        assert name in options, f"nbprune prune has no option for {name}"
        assert "(default: " in options[name].help
    assert {"session_dir", "begin_itr", "end_itr"} <= set(options)
    assert "(default: 0.8)" in options["q"].help and "(default: 256 64)" in options["hidden"].help


def test_the_workbook_takes_every_setting_but_the_ones_its_notebooks_make():
    assert set(PARAMETERS) == set(SETTINGS) - set(NOT_IN_WORKBOOK)
    for names in NOTEBOOK_PARAMETERS.values():
        assert names[0] == "session_dir" and len(set(names)) == len(names)
    for profile in PROFILES.values():
        RunConfig.from_flat({name: value for name, value in profile.items() if name in RUN_SETTINGS})
        Controls(**{name: value for name, value in profile.items() if name in CONTROLS})
    assert PROFILES["full"] == {"epochs": 300, "patience": 10}
    assert PROFILES["quick"] == {"epochs": 3, "patience": 1, "compare_epochs": 2}


def test_the_configuration_page_names_every_setting():
    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    missing = [name for name in SETTINGS if f"`{name}`" not in page]
    assert not missing, f"docs/configuration.md does not name the settings {missing}: add them to 'One configuration'"
