"""A sweep's spec: which settings vary (a grid and/or a list of cases), which are fixed, over which seeds, and how
far each chain prunes; and its expansion into chains, each pruning one shared dense model.

    seeds = [0, 1, 2]          # one chain per seed for every combination
    end_itr = 8                # stop each chain after this iteration (leave out: the whole schedule)

    [set]                      # every chain
    epochs = 5
    subset = 5000

    [grid]                     # every combination of these
    criterion = ["interval_adjoint", "magnitude"]

    [[cases]]                  # and/or: a list of settings sets, each crossed with the grid
    prune_inputs = false
    [[cases]]
    prune_inputs = true
    allocation = "global"
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config import CONTROLS, RUN_SETTINGS, RunConfig, data_root
from ..datasets import is_data_file
from ..errors import ConfigError, NbpruneError
from ..files import resolved

SPEC_KEYS = ("seeds", "end_itr", "set", "grid", "cases")
# Settings that do not decide the dense model (iteration 0): every chain differing only in these shares one.
PRUNING_GROUPS = ("prune", "schedule")


class SweepError(ConfigError):
    """A sweep spec or sweep folder that cannot be used as asked."""


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs: every case x every grid combination x every seed, with the fixed settings."""

    grid: dict[str, tuple] = field(default_factory=dict)
    cases: tuple[dict, ...] = ({},)
    seeds: tuple[int, ...] = (0,)
    fixed: dict[str, Any] = field(default_factory=dict)
    end_itr: int | None = None

    def varied(self) -> list[str]:
        """Return the names of the settings that differ between chains (besides the seed), cases' first."""
        in_cases = [name for case in self.cases for name in case]
        return list(dict.fromkeys([*in_cases, *self.grid]))

    def to_dict(self) -> dict:
        """Return the spec as JSON-ready values (what sweep.json keeps to refuse a changed spec)."""
        return json.loads(json.dumps({"seeds": list(self.seeds), "end_itr": self.end_itr, "set": self.fixed,
                                      "grid": self.grid, "cases": list(self.cases)}))

    def differences(self, saved: Mapping) -> list[str]:
        """Return, one per differing part, how `saved` (an earlier to_dict()) differs from this spec."""
        ours = self.to_dict()
        return [f"{key}: saved {saved.get(key)!r}, asked {ours[key]!r}" for key in SPEC_KEYS
                if saved.get(key) != ours[key]]


@dataclass(frozen=True)
class Chain:
    """One pruning chain: its folder name, the settings that vary in the sweep, its whole configuration, and its
    dense model's folder name and configuration."""

    name: str
    varied: dict[str, Any]
    config: RunConfig
    dense: str
    dense_config: RunConfig | None = None  # what its dense model is trained with (see dense_config)
    settings: dict = field(default_factory=dict)  # what its name is the hash of, recorded in its folder
    dense_settings: dict = field(default_factory=dict)  # the same for its dense model's folder

    @property
    def seed(self) -> int:
        return self.config.seed


# --- reading a spec ---------------------------------------------------------------------------------------------
def read_spec(path: str | os.PathLike) -> SweepSpec:
    """Return the spec a TOML file holds, checked."""
    import tomllib

    path = Path(path)
    if path.is_dir():
        raise SweepError(f"sweep spec {path} is a folder: give the path of a TOML file (see `nbprune sweep --help` "
                         f"for its format); a sweep's own folder is given with --dir.")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"sweep spec {path} does not exist: give the path of a TOML file (see `nbprune sweep "
                         f"--help` for its format).") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise SweepError(f"sweep spec {path} is not readable TOML ({error}): fix the file.") from None
    return spec_from_dict(values, f"sweep spec {path}")


def spec_from_dict(values: Mapping[str, Any], source: str = "the sweep spec") -> SweepSpec:
    """Return the spec a mapping of seeds, end_itr, set, grid and cases holds, every value checked."""
    unknown = sorted(set(values) - set(SPEC_KEYS))
    if unknown:
        raise SweepError(f"{source}: unknown key(s) {', '.join(unknown)}: expected {', '.join(SPEC_KEYS)}.")
    fixed = _settings(_table(values.get("set", {}), "set", source), f"{source} [set]")
    grid = {name: tuple(_setting_value(name, value, f"{source} [grid]") for value in _values(name, choices, source))
            for name, choices in _table(values.get("grid", {}), "grid", source).items()}
    cases = values.get("cases", [{}])
    if not isinstance(cases, list) or not cases or not all(isinstance(case, dict) for case in cases):
        raise SweepError(f"{source}: cases={cases!r} is not allowed: expected a list of tables of settings "
                         f"([[cases]] blocks in TOML).")
    cases = tuple(_settings(case, f"{source} [[cases]] {number}") for number, case in enumerate(cases, 1))
    overlap = sorted(set(fixed) & (set(grid) | {name for case in cases for name in case}) | _shared(grid, cases))
    if overlap:
        raise SweepError(f"{source}: {', '.join(overlap)} given in more than one of set, grid and cases: give each "
                         f"setting in one place.")
    return SweepSpec(grid=grid, cases=cases, seeds=_seeds(values.get("seeds", [0]), source), fixed=fixed,
                     end_itr=_end_itr(values.get("end_itr"), source))


def _shared(grid: Mapping, cases: Sequence[Mapping]) -> set[str]:
    return set(grid) & {name for case in cases for name in case}


def _table(value: Any, key: str, source: str) -> dict:
    if not isinstance(value, dict):
        raise SweepError(f"{source}: {key}={value!r} is not allowed: expected a table of settings by name.")
    return value


def _values(name: str, choices: Any, source: str) -> list:
    if not isinstance(choices, list) or not choices:
        raise SweepError(f"{source}: grid {name}={choices!r} is not allowed: expected a non-empty list of values, "
                         f"e.g. {name} = [a, b].")
    return choices


def _settings(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    return {name: _setting_value(name, value, source) for name, value in values.items()}


def _setting_value(name: str, value: Any, source: str) -> Any:
    """Return one setting's value checked by its declaration (text is parsed as the command line does)."""
    if name == "seed":
        raise SweepError(f"{source}: seed is not set here: list the seeds as seeds = [0, 1, 2].")
    if name == "end_itr":
        raise SweepError(f"{source}: end_itr is not a setting of the chains: give it at the top of the spec "
                         f"(end_itr = 8, before any [table]) or as --end-itr 8.")
    if name not in RUN_SETTINGS:
        hint = " (it is decided by the sweep itself)" if name in CONTROLS else ""
        raise SweepError(f"{source}: unknown setting {name!r}{hint}: expected one of "
                         f"{', '.join(n for n in RUN_SETTINGS if n != 'seed')}.")
    setting = RUN_SETTINGS[name]
    with _named(source):
        value = setting.parse(value) if isinstance(value, str) and setting.kind not in ("str", "path") \
            else setting.check(value)
    return list(value) if isinstance(value, tuple) else value


@contextmanager
def _named(source: str):
    """Say where in the spec a setting's own refusal comes from."""
    try:
        yield
    except SweepError:
        raise
    except ConfigError as error:
        raise SweepError(f"{source}: {error}") from None


def _seeds(seeds: Any, source: str) -> tuple[int, ...]:
    seeds = seeds if isinstance(seeds, list) else [seeds]
    with _named(source):
        checked = tuple(RUN_SETTINGS["seed"].check(seed) for seed in seeds)
    if not checked or len(set(checked)) != len(checked):
        raise SweepError(f"{source}: seeds={seeds!r} is not allowed: expected distinct whole numbers, e.g. [0, 1, 2].")
    return checked


def _end_itr(end_itr: Any, source: str) -> int | None:
    with _named(source):
        return CONTROLS["end_itr"].check(end_itr)


# --- the command line's --grid NAME=V1,V2 and --set NAME=VALUE ----------------------------------------------------
def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """Return (name, value text) of a NAME=VALUE argument, or refuse it naming the option."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise SweepError(f"{option} {text!r} is not allowed: expected NAME=VALUE, e.g. {option} epochs=5.")
    return name.strip(), value


def grid_values(name: str, text: str) -> list[str]:
    """Return the value texts of --grid NAME=V1,V2 (a list setting such as hidden: 256,64;128,32)."""
    setting = RUN_SETTINGS.get(name)
    if setting is not None and setting.kind == "ints":
        if "+" in text and "," in text and ";" not in text:
            raise SweepError(f"--grid {name}={text} is ambiguous: separate {name}'s values with ';', layers with "
                             f"',' or '+', e.g. --grid '{name}=256,64;128,32'.")
        return [part.replace("+", ",") for part in text.split(";")]
    return text.split(",")


# --- expansion ----------------------------------------------------------------------------------------------------
MAX_CHAINS = 10_000  # one sweep runs at most this many chains (a folder each): more is a typo or a split sweep
NAME_LENGTH = 80  # the readable part of a folder name; the hash after it makes the name exact
SETTINGS_FILE = "settings.json"  # in every chain's and dense model's folder: the settings its name is the hash of


def chain_count(spec: SweepSpec) -> int:
    """Return how many chains the spec asks for: cases x grid combinations x seeds."""
    return len(spec.cases) * math.prod(len(values) for values in spec.grid.values()) * len(spec.seeds)


def expand(spec: SweepSpec) -> list[Chain]:
    """Return every chain of the spec, in a fixed order, each configuration checked and its paths resolved (so
    every worker reads the same files, whatever its working folder and environment); in time linear in the chains,
    refusing more than MAX_CHAINS before building any."""
    count = chain_count(spec)
    if count > MAX_CHAINS:
        combinations = math.prod(len(values) for values in spec.grid.values())
        raise SweepError(f"the sweep asks for {count:,} chains ({len(spec.cases)} case(s) x {combinations:,} grid "
                         f"combination(s) x {len(spec.seeds)} seed(s)), more than the {MAX_CHAINS:,} one sweep runs: "
                         f"vary fewer settings or values, or split it into several sweeps (each its own --dir).")
    names = spec.varied()
    hashes: dict[str, str | None] = {}  # the files' contents, hashed once per path
    chains: list[Chain] = []
    seen: dict[str, int] = {}
    for case in spec.cases:
        for values in itertools.product(*spec.grid.values()):
            point = dict(zip(spec.grid, values))
            for seed in spec.seeds:
                settings = {**spec.fixed, **case, **point, "seed": seed}
                number = len(chains) + 1
                config = _config(settings, number)
                flat = config.flat()
                varied = {name: flat[name] for name in names}
                dense = _dense_config(config, number)
                chain_settings, dense_settings = identity_settings(config, hashes), identity_settings(dense, hashes)
                name = folder_name({**varied, "seed": seed}, chain_settings)
                if name in seen:
                    raise SweepError(f"chains {seen[name]} and {number} of the sweep have the same settings "
                                     f"({readable_name({**varied, 'seed': seed})}): list each combination once.")
                seen[name] = number
                chains.append(Chain(name, varied, config, folder_name({**_dense_part(varied), "seed": seed},
                                                                      dense_settings),
                                    dense, chain_settings, dense_settings))
    return chains


def _config(settings: dict, number: int) -> RunConfig:
    try:
        config = RunConfig.from_flat({"threads": 1, **settings})
    except ConfigError as error:
        raise SweepError(f"chain {number} ({readable_name(settings)}): {error}") from None
    return config.replace(**_resolved(config))


def _dense_part(varied: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in varied.items() if RUN_SETTINGS[name].group not in PRUNING_GROUPS}


def dense_config(config: RunConfig) -> RunConfig:
    """Return the configuration the chain's dense model (iteration 0) is trained with: its own, with the pruning
    settings at their defaults and no teacher file (iteration 0 prunes nothing and the teacher teaches pruned
    iterations only), so chains that differ in those alone share it; unless the schedule's first row already
    prunes (a retain.txt whose row 0 keeps fewer neurons or inputs than the model has): then iteration 0 is the
    chain's own, trained as `nbprune prune` trains it."""
    if _first_row_prunes(config):
        return config
    defaults = RunConfig()
    return dataclasses.replace(config, prune=defaults.prune, schedule=defaults.schedule,
                               train=dataclasses.replace(config.train, teacher=None))


def _dense_config(config: RunConfig, number: int) -> RunConfig:
    try:
        return dense_config(config)
    except NbpruneError as error:  # a retain.txt that cannot be read: prune's own refusal, naming the chain
        raise SweepError(f"chain {number}: {' '.join(str(error).split())}") from None


def _first_row_prunes(config: RunConfig) -> bool:
    """Return whether iteration 0 of the configuration's schedule keeps fewer neurons (or inputs) than the model
    has: only a retain.txt can say so (round(h * q**0) = h)."""
    if config.schedule.retain is None:
        return False
    from ..datasets import DATASETS
    from ..retention import base_steps

    first = base_steps(config)[0]
    declared = DATASETS.get(config.data.dataset)  # a data file's width is known once it is read: a given inputs
    features = declared.features if declared is not None else None  # count then counts as pruning (no sharing)
    fewer_inputs = config.prune.prune_inputs and first.inputs is not None and (features is None or
                                                                                first.inputs < features)
    return tuple(first.retained) != tuple(config.model.hidden) or fewer_inputs


def with_paths_resolved(chains: list[Chain]) -> list[Chain]:
    """Return the chains with data_root, retain and teacher resolved here (expand already does it)."""
    return [dataclasses.replace(chain, config=chain.config.replace(**_resolved(chain.config))) for chain in chains]


def _resolved(config: RunConfig) -> dict[str, str]:
    paths = {"data_root": str(resolved(data_root(config.data.data_root)))}
    for name in FILE_SETTINGS:
        path = config.flat()[name]
        if path is not None and (name != "dataset" or is_data_file(path)):
            paths[name] = str(resolved(path))
    return paths


FILE_SETTINGS = ("dataset", "retain", "teacher")  # settings that may name a file whose contents decide the models


def identity_settings(config: RunConfig, hashes: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Return every setting of a configuration as JSON values, with the sha256 of the contents of the files it
    names (a data file, a retain.txt, a teacher; None where a file cannot be read: the checks before the first write
    refuse it): what decides the models of a folder, so what its name is the hash of."""
    settings = config.to_dict()
    for name in FILE_SETTINGS:
        if settings[name] is not None and (name != "dataset" or is_data_file(settings[name])):
            settings[f"{name}_sha256"] = _file_hash(settings[name], {} if hashes is None else hashes)
    return settings


def _file_hash(path: str, hashes: dict[str, str | None]) -> str | None:
    """Return the sha256 of a regular file's contents (None for anything else: a FIFO's read would wait forever for
    a writer before the checks could refuse it)."""
    if path not in hashes:
        try:
            hashes[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else None
        except (OSError, ValueError):
            hashes[path] = None
    return hashes[path]


def value_text(value: Any) -> str:
    """Return a setting's value as a folder name and the table write it: 256+64 for lists."""
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def readable_name(values: Mapping[str, Any]) -> str:
    """Return name=value pairs joined by '__', unsafe characters replaced by '_', cut to NAME_LENGTH: readable,
    not exact (folder_name adds the hash that makes it exact)."""
    text = "__".join(f"{name}={value_text(value)}" for name, value in values.items())
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", text)[:NAME_LENGTH]


def folder_name(values: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """Return a folder's exact name: the readable name of `values` (the settings that vary, and the seed), then
    '--' and 16 hex digits of the sha256 of every setting in `settings` (JSON, keys sorted). Two folders share a
    name only when every setting that decides their models is the same."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return f"{readable_name(values)}--{digest}"
