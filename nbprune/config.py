"""Every setting of a run, declared once: its default, its bounds and what it means.

`RunConfig` holds a run's settings in five groups (data, model, schedule, train, prune) plus the seed, the device
and the threads; `Controls` holds what one command or notebook decides (session folder, iterations to run, the
iteration to deploy). The command line, the workbook's `-p NAME VALUE`, the notebooks' parameters cells and the
benchmarks are built from these declarations, so a setting is added in one place: a field of its group here.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .datasets import DATASETS, DEFAULT, FILE_SUFFIXES, check_dataset_name
from .errors import ConfigError

ACTIVATIONS = ("relu", "sigmoid")
ARCHITECTURES = ("lenet5", "lenet5_small")  # networks declared by name in nbprune.architectures
RECIPES = ("default", "reference", "onecycle")  # how each iteration retrains (nbprune.training)
CRITERIA = ("interval_adjoint", "magnitude", "taylor", "random")  # each registered under its name in nbprune.criteria
ADJOINT_SEEDS = ("ones", "class_sum", "class_max")  # the interval-adjoint criterion's options (nbprune.criteria)
INPUT_BOXES = ("data", "class", "local")
COMPENSATIONS = ("none", "mean", "midpoint")  # bias compensation (nbprune.prune)
BUDGETS = ("neurons", "parameters", "macs")  # what global allocation's budget counts (nbprune.prune, nbprune.channels)
NORMALISATIONS = ("mean", "rank", "none")  # global allocation's score normalisation (nbprune.prune)
AGGREGATIONS = ("max", "sum", "mean")  # how a channel's per-position significances become one (nbprune.channels)
MAX_ITERATIONS = 1000
DEVICE_PATTERN = re.compile(r"cpu|auto|cuda(:\d{1,2})?")
BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
NONE_WORDS = ("none", "null", "")


def setting(default: Any, help: str, *, kind: str, low: float | None = None, high: float | None = None,
            bounds: str = "[]", choices: tuple[str, ...] | None = None, optional: bool = False):
    """Declare one setting: a dataclass field whose metadata says how to parse, check and explain it.

    kind: int, float, str, bool, ints (a list of whole numbers), path, iteration (a whole number or 'auto'), or
    dataset (a declared dataset's name or a data file's path, nbprune.datasets).
    low/high bound numbers (and each of a list's numbers); bounds says whether they are closed '[]' or open '()'.
    """
    return field(default=default, metadata={"help": help, "kind": kind, "low": low, "high": high,
                                            "bounds": bounds, "choices": choices, "optional": optional})


@dataclass(frozen=True)
class Setting:
    """One declared setting, as the doors see it."""

    name: str
    group: str
    default: Any
    help: str
    kind: str
    low: float | None
    high: float | None
    bounds: str
    choices: tuple[str, ...] | None
    optional: bool

    def expected(self) -> str:
        """Return what a value of this setting must be, in words."""
        if self.choices:
            words = f"one of {', '.join(self.choices)}"
        elif self.kind == "bool":
            words = "true or false"
        elif self.kind == "dataset":
            words = f"one of {', '.join(DATASETS)}, or a file of your own data ({' or '.join(FILE_SUFFIXES)})"
        elif self.kind == "path":
            words = f"a folder or file path (at most {PATH_MAX - 1} bytes, {NAME_MAX} per name)"
        elif self.kind == "str":
            words = "a word"
        else:
            noun = {"int": "a whole number", "float": "a number", "ints": "whole numbers",
                    "iteration": "a whole number"}[self.kind]
            words = noun + self._range()
            if self.kind == "iteration":
                words += " or 'auto'"
        return words + (" or None" if self.optional else "")

    def _range(self) -> str:
        if self.low is None and self.high is None:
            return ""
        low_word = "above" if self.bounds[0] == "(" else "from"
        high_word = "below" if self.bounds[1] == ")" else "to"
        if self.high is None:
            return f" {'>' if self.bounds[0] == '(' else '>='} {_number_text(self.low)}"
        return f" {low_word} {_number_text(self.low)} {high_word} {_number_text(self.high)}"

    def _refuse(self, value: Any) -> ConfigError:
        return ConfigError(f"{self.name}={value!r} is not allowed: expected {self.expected()} ({self.help}).")

    def _in_range(self, number: float) -> bool:
        low_ok = self.low is None or (number > self.low if self.bounds[0] == "(" else number >= self.low)
        high_ok = self.high is None or (number < self.high if self.bounds[1] == ")" else number <= self.high)
        return low_ok and high_ok

    def check(self, value: Any) -> Any:
        """Return `value` in its canonical form (tuple for lists, int for whole numbers), or raise ConfigError."""
        if value is None:
            if self.optional:
                return None
            raise self._refuse(value)
        kind = self.kind
        if kind == "iteration" and value == "auto":
            return value
        if kind in ("int", "iteration"):
            if not _is_whole(value) or not self._in_range(value):
                raise self._refuse(value)
            return int(value)
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                    or not self._in_range(value):
                raise self._refuse(value)
            return float(value)
        if kind == "ints":
            items = list(value) if isinstance(value, (list, tuple)) else None
            if not items or len(items) > MAX_LAYERS or any(not _is_whole(v) or not self._in_range(v) for v in items):
                raise ConfigError(f"{self.name}={value!r} is not allowed: expected 1 to {MAX_LAYERS} "
                                  f"{self.expected()}, e.g. 256,64 ({self.help}).")
            return tuple(int(v) for v in items)
        if kind == "bool":
            if not isinstance(value, bool):
                raise self._refuse(value)
            return value
        if kind == "path":
            text = str(value) if isinstance(value, (str, os.PathLike)) else ""
            if not text.strip() or _too_long(text):
                raise self._refuse(value if len(text) <= 60 else text[:57] + "...")
            return text
        if kind == "dataset":
            try:
                name = check_dataset_name(value)
            except ConfigError:
                name = None
            if name is None or _too_long(name):
                raise self._refuse(value if len(str(value)) <= 60 else str(value)[:57] + "...")
            return name
        if not isinstance(value, str) or (self.choices and value not in self.choices):
            raise self._refuse(value)
        return value

    def parse(self, text: str) -> Any:
        """Return the value that command-line text stands for, checked; errors quote the text as given."""
        try:
            return self._parse(text)
        except ConfigError:
            raise self._refuse(text if len(text) <= 60 else text[:57] + "...") from None

    def _parse(self, text: str) -> Any:
        stripped = text.strip()
        if stripped.lower() in NONE_WORDS and (self.optional or self.kind not in ("path", "str", "dataset")):
            return self.check(None)
        if self.kind in ("path", "str", "dataset") or (self.kind == "iteration" and stripped == "auto"):
            return self.check(stripped if self.kind != "path" else text)
        if self.kind == "bool":
            if stripped.lower() not in BOOLEANS:
                raise self._refuse(text)
            return BOOLEANS[stripped.lower()]
        if self.kind == "ints":
            parts = [part for part in re.split(r"[\s,\[\]()]+", stripped) if part]
            return self.check([_number(part, self, text, whole=True) for part in parts])
        return self.check(_number(stripped, self, text, whole=self.kind != "float"))


MAX_LAYERS = 16
PATH_MAX, NAME_MAX = 4096, 255  # Linux's limits; a longer path fails in the first open, after other writes


def _too_long(path: str) -> bool:
    """Return whether a path is longer than the file system takes, as a whole or in one of its names."""
    def size(text: str) -> int:
        return len(text.encode("utf-8", "surrogatepass"))
    return size(path) >= PATH_MAX or any(size(name) > NAME_MAX for name in Path(path).parts)


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _is_whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(text: str, owner: Setting, original: str, whole: bool) -> int | float:
    """Return the number written in `text` without ever building a huge integer or float from it."""
    if len(text) > 40:
        raise owner._refuse(original if len(original) <= 60 else original[:57] + "...")
    try:
        if whole:
            return int(text)
        return float(text)
    except ValueError:
        raise owner._refuse(original) from None


# --- the groups -------------------------------------------------------------------------------------------------
def _check_fields(instance) -> None:
    """Check and canonicalise every field of a frozen settings dataclass (its __post_init__)."""
    for declared in dataclasses.fields(instance):
        if "kind" not in declared.metadata:
            continue
        checked = _describe(declared, "").check(getattr(instance, declared.name))
        object.__setattr__(instance, declared.name, checked)


@dataclass(frozen=True)
class DataConfig:
    """Which data, where it lives, and how it is split and batched."""

    dataset: str = setting(DEFAULT.name, "the dataset: a declared one's name, or a .npz/.csv file of your own",
                           kind="dataset")
    data_root: str | None = setting(None, "folder holding <dataset>/raw/; None: $NBPRUNE_DATA_ROOT, else "
                                          "<project>/data (downloaded there when missing)", kind="path",
                                    optional=True)
    subset: int | None = setting(None, "use only this many training and test images (the validation split stays "
                                       "as val_size says); None: all", kind="int", low=1, high=10_000_000,
                                 optional=True)
    val_size: int | None = setting(None, "training images held out for validation; None: 1 in 12 (5,000 of "
                                         "MNIST)", kind="int", low=1, high=10_000_000, optional=True)
    batch_size: int = setting(64, "training batch size", kind="int", low=1, high=65_536)

    __post_init__ = _check_fields


@dataclass(frozen=True)
class ModelConfig:
    """The dense network: SimpleNN's hidden layers and activation, or an architecture declared by name."""

    hidden: tuple[int, ...] = setting((256, 64), "neurons per hidden layer of the dense model, any number of "
                                                 "layers", kind="ints", low=1, high=16_384)
    activation: str = setting("relu", "the activation between layers", kind="str", choices=ACTIVATIONS)
    architecture: str | None = setting(None, "a network declared by name (nbprune.architectures) instead of the MLP "
                                             "of hidden and activation: its channels and neurons are pruned; None: "
                                             "the MLP", kind="str", choices=ARCHITECTURES, optional=True)

    __post_init__ = _check_fields


@dataclass(frozen=True)
class ScheduleConfig:
    """How many neurons each iteration keeps: round(h * q**t) per layer, or a retain.txt."""

    q: float = setting(0.8, "fraction of neurons kept per iteration", kind="float", low=0, high=1, bounds="()")
    iterations: int = setting(31, "schedule iterations 0 .. iterations-1", kind="int", low=1, high=MAX_ITERATIONS)
    retain: str | None = setting(None, "a retain.txt to follow instead of the q schedule", kind="path",
                                 optional=True)
    input_q: float | None = setting(None, "with prune_inputs: fraction of input features kept per iteration; None: "
                                          "the schedule's own rate (q; with a retain.txt, its share of hidden "
                                          "neurons)", kind="float", low=0, high=1, bounds="()", optional=True)

    __post_init__ = _check_fields


@dataclass(frozen=True)
class TrainConfig:
    """How every iteration (re)trains: AdamW, early stopping on the validation split, distillation."""

    recipe: str = setting("default", "default: learning-rate drops on plateaus; reference: the reference workflow's "
                                     "constant rate; onecycle: a short one-cycle schedule per iteration at "
                                     "cycle_batch_size (cycle_epochs, dense_cycle_epochs, max_lr)", kind="str",
                          choices=RECIPES)
    lr: float = setting(1e-3, "learning rate of AdamW", kind="float", low=0, high=10, bounds="(]")
    epochs: int = setting(40, "most epochs per iteration (the reference: 300)", kind="int", low=1, high=100_000)
    patience: int = setting(10, "epochs without a better validation loss before training stops", kind="int",
                            low=1, high=100_000)
    lr_patience: int = setting(1, "stalled epochs tolerated before the learning rate drops x0.2", kind="int",
                               low=0, high=1000)
    lr_drops: int = setting(3, "learning-rate drops without improvement before training stops", kind="int",
                            low=1, high=100)
    cycle_epochs: int = setting(5, "onecycle: epochs of each pruned iteration's retraining, all of them run (the "
                                   "best on validation is kept)", kind="int", low=1, high=100_000)
    dense_cycle_epochs: int = setting(10, "onecycle: epochs of the dense model's training", kind="int", low=1,
                                      high=100_000)
    cycle_batch_size: int = setting(128, "onecycle: training batch size (batch_size is the other recipes')",
                                    kind="int", low=1, high=65_536)
    max_lr: float = setting(2e-3, "onecycle: the peak learning rate, reached after the first 30% of the steps "
                                  "(it starts and ends lower)", kind="float", low=0, high=10, bounds="(]")
    weight_decay: float = setting(1e-4, "AdamW weight decay", kind="float", low=0, high=10)
    min_delta: float = setting(1e-4, "smallest drop of the validation loss that counts as better", kind="float",
                               low=0, high=100)
    distill: bool = setting(True, "retrain pruned iterations on the dense model's softened outputs as well as "
                                  "the labels (the reference workflow: false)", kind="bool")
    distill_weight: float = setting(0.5, "weight of the distillation term", kind="float", low=0, high=1)
    temperature: float = setting(2.0, "distillation temperature", kind="float", low=0, high=100, bounds="(]")
    teacher: str | None = setting(None, "a model file the pruned iterations distil from instead of the dense model: "
                                        "a best_model.pth or a file `nbprune teacher` wrote, trained on the run's "
                                        "dataset and standardisation; None: the dense model", kind="path",
                                  optional=True)
    augment_shift: int = setting(0, "shift each training image by up to this many pixels at random, every batch, "
                                    "before pixel selection (a teacher sees the shifted images); 0: off", kind="int",
                                 low=0, high=8)

    def __post_init__(self):
        _check_fields(self)
        if self.teacher is not None and not self.distill:
            raise ConfigError(f"teacher={self.teacher!r} needs distill=true (without distillation no teacher is "
                              f"used): set distill=true, or leave teacher out.")


@dataclass(frozen=True)
class PruneConfig:
    """How neurons are scored and removed."""

    criterion: str = setting("interval_adjoint", "how neurons are scored", kind="str", choices=CRITERIA)
    adjoint_seeds: str = setting("ones", "interval_adjoint: one backward pass from 1 on every output (the reference), "
                                         "or one per class, summed (class_sum) or maxed (class_max)", kind="str",
                                 choices=ADJOINT_SEEDS)
    input_boxes: str = setting("data", "interval_adjoint: the whole-data box (the reference), one box per class, or "
                                       "small boxes around training inputs (local), scores averaged", kind="str",
                               choices=INPUT_BOXES)
    box_radius: float = setting(0.5, "local boxes: half-width around each training input, in standardised units",
                                kind="float", low=0, high=100, bounds="(]")
    box_count: int = setting(256, "local boxes: how many training inputs get one", kind="int", low=1, high=10_000)
    prune_inputs: bool = setting(False, "prune input features (pixels) too, not only hidden neurons", kind="bool")
    bias_compensation: str = setting("none", "fold a removed node's mean activation (mean) or interval midpoint "
                                             "(midpoint), times its outgoing weights, into the next layer's bias",
                                     kind="str", choices=COMPENSATIONS)
    allocation: str = setting("layer", "layer: each layer keeps round(h * q**t) (the reference); global: all nodes "
                                       "compete for one budget per iteration", kind="str", choices=("layer", "global"))
    budget: str = setting("neurons", "global allocation's budget: the schedule's total hidden neurons, or the same "
                                     "share of the dense model's parameters, or of its multiply-accumulates per "
                                     "input (macs: a network of layers, whose convolutions cost more than their "
                                     "weights)", kind="str", choices=BUDGETS)
    normalise: str = setting("mean", "global allocation: how scores of different layers are made comparable: over "
                                     "the layer's mean, by rank within the layer (every layer shrinks at the same "
                                     "rate), or as they are (none)", kind="str", choices=NORMALISATIONS)
    aggregation: str = setting("max", "channels: how a channel's significance at each of its positions becomes one "
                                      "score: the largest, the total or the average (a neuron has one position)",
                               kind="str", choices=AGGREGATIONS)
    min_last_hidden: int | None = setting(None, "global allocation: fewest neurons the last hidden layer keeps; "
                                                "None: the number of classes", kind="int", low=1, high=16_384,
                                          optional=True)

    def __post_init__(self):
        _check_fields(self)
        if self.allocation == "layer" and self.budget != "neurons":
            raise ConfigError(f"budget={self.budget!r} needs allocation='global' (with allocation='layer' each layer "
                              f"keeps its own count).")


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a pruning run. Build one with RunConfig(...) or RunConfig.from_flat({...})."""

    seed: int = setting(0, "seed of the split, the shuffles and the initial weights", kind="int", low=0,
                        high=2 ** 32 - 1)
    device: str = setting("cpu", "cpu, cuda, cuda:N or auto (CUDA when available)", kind="str")
    threads: int | None = setting(None, "torch CPU threads; None: torch's default (one per core). 1 is fastest "
                                        "for small networks on a busy machine", kind="int", low=1, high=256,
                                  optional=True)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)

    def __post_init__(self):
        _check_fields(self)
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ConfigError(f"device={self.device!r} is not allowed: expected cpu, cuda, cuda:N or auto.")

    @classmethod
    def from_flat(cls, values: Mapping[str, Any] | None = None, **more: Any) -> "RunConfig":
        """Return the configuration with the named settings changed from their defaults."""
        return cls().replace(**{**(values or {}), **more})

    def replace(self, **changes: Any) -> "RunConfig":
        """Return a copy with the named settings (flat names such as lr or hidden) changed."""
        unknown = sorted(set(changes) - set(RUN_SETTINGS))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}: expected any of "
                              f"{', '.join(RUN_SETTINGS)}.")
        top = {name: value for name, value in changes.items() if not RUN_SETTINGS[name].group}
        groups = {}
        for name, value in changes.items():
            group = RUN_SETTINGS[name].group
            if group:
                groups.setdefault(group, {})[name] = value
        parts = {group: dataclasses.replace(getattr(self, group), **values) for group, values in groups.items()}
        return dataclasses.replace(self, **top, **parts)

    def flat(self) -> dict[str, Any]:
        """Return every setting by its flat name."""
        return {name: getattr(getattr(self, s.group) if s.group else self, name) for name, s in RUN_SETTINGS.items()}

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-ready values (lists for tuples)."""
        return {name: list(value) if isinstance(value, tuple) else value for name, value in self.flat().items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunConfig":
        """Return the configuration a to_dict() (or a run record) holds; unknown names are refused."""
        return cls.from_flat(values)


@dataclass(frozen=True)
class Controls:
    """What one command or notebook decides: where the session lives and which iterations to run or deploy."""

    session_dir: str | None = setting(None, "the session folder; None: <project>/sessions/default", kind="path",
                                      optional=True)
    begin_itr: int | str = setting(0, "0: from scratch; k: resume at iteration k from the previous schedule "
                                      "row's model; auto: continue where it stopped", kind="iteration", low=0,
                                      high=MAX_ITERATIONS)
    end_itr: int | None = setting(None, "stop after this iteration; None: the whole schedule", kind="int", low=0,
                                  high=MAX_ITERATIONS, optional=True)
    chosen_itr: int | None = setting(None, "the iteration to deploy; None: the smallest model within one point "
                                           "of the run's best validation accuracy", kind="int", low=0,
                                     high=MAX_ITERATIONS, optional=True)
    demo_epochs: int = setting(1, "epochs of 02's short demonstration run", kind="int", low=1, high=1000)
    compare_levels: tuple[int, ...] | None = setting(
        None, "07's levels: iterations of 03's schedule to prune the dense model to; None: the rows nearest 25%, "
              "10% and 5% of the hidden neurons", kind="ints", low=1, high=MAX_ITERATIONS, optional=True)
    compare_seeds: int = setting(2, "07's seeds: how many times each method retrains (the spread over seeds needs "
                                    "2 or more; with 1, 07 draws no verdict)", kind="int", low=1, high=100)
    compare_epochs: int | None = setting(None, "07's retraining of each pruned model: most epochs (scratch trains "
                                               "the dense model's epochs more: one budget); None: as the session's "
                                               "pruning run", kind="int", low=1, high=100_000, optional=True)

    __post_init__ = _check_fields


def _describe(declared: dataclasses.Field, group: str) -> Setting:
    meta = declared.metadata
    default = declared.default if declared.default is not dataclasses.MISSING else None
    return Setting(declared.name, group, default, meta["help"], meta["kind"], meta["low"], meta["high"],
                   meta["bounds"], meta["choices"], meta["optional"])


def _collect(cls, group: str = "") -> dict[str, Setting]:
    found: dict[str, Setting] = {}
    for declared in dataclasses.fields(cls):
        if "kind" in declared.metadata:
            found[declared.name] = _describe(declared, group)
        else:  # a nested group
            for name, described in _collect(declared.default_factory, declared.name).items():
                if name in found:
                    raise RuntimeError(f"setting {name} is declared twice: flat names must be unique")
                found[name] = described
    return found


RUN_SETTINGS: dict[str, Setting] = _collect(RunConfig)
CONTROLS: dict[str, Setting] = _collect(Controls)
SETTINGS: dict[str, Setting] = {**RUN_SETTINGS, **CONTROLS}
if len(SETTINGS) != len(RUN_SETTINGS) + len(CONTROLS):
    raise RuntimeError("a control shares its name with a run setting: flat names must be unique")


def declared_default(name: str) -> Any:
    """Return setting `name`'s default, as declared here."""
    return SETTINGS[name].default


def or_default(value: Any, name: str) -> Any:
    """Return `value`, or setting `name`'s declared default when it is None (a library signature's None)."""
    return declared_default(name) if value is None else value


def parse_settings(pairs: Mapping[str, str] | list[tuple[str, str]]) -> dict[str, Any]:
    """Return typed, checked values for `NAME VALUE` text pairs (the workbook's -p), refusing unknown names."""
    values = {}
    for name, text in (pairs.items() if isinstance(pairs, Mapping) else pairs):
        if name not in SETTINGS:
            raise ConfigError(f"unknown setting {name!r}: expected one of {', '.join(SETTINGS)}.")
        values[name] = SETTINGS[name].parse(text)
    return values


# --- where relative defaults are anchored -----------------------------------------------------------------------
def project_root(start: str | os.PathLike | None = None) -> Path:
    """Return the nearest folder at or above `start` (default: cwd) holding notebooks/ and pyproject.toml, else cwd."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    return start


def resolve_device(device: str | None):
    """Return the torch device to run on: 'cpu', 'cuda', 'cuda:N', or 'auto' (CUDA when available)."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not DEVICE_PATTERN.fullmatch(device):
        raise ConfigError(f"device={device!r} is not allowed: expected cpu, cuda, cuda:N or auto.")
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} was asked for but CUDA is not available here: use device='cpu' "
                              f"(or 'auto').")
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device={device!r} does not exist: this machine has {torch.cuda.device_count()} "
                              f"CUDA device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}.")
    return torch.device(device)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return where the data lives: the argument, else $NBPRUNE_DATA_ROOT, else <project>/data."""
    if root is not None:
        return Path(root)
    if os.environ.get("NBPRUNE_DATA_ROOT"):
        return Path(os.environ["NBPRUNE_DATA_ROOT"])
    return project_root() / "data"
