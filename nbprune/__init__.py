"""nbprune: interval-adjoint sensitivity guided node pruning of neural networks, as a library and a workbook."""

from .data import MNISTData, TensorLoader, input_box, load_data
from .errors import DataError, InputError, ModelFileError, NbpruneError, ScheduleError, TrainingError
from .evaluate import evaluate
from .io import load_pruned_model
from .model import SimpleNN, parameter_count
from .train import train

__version__ = "0.1.0"

__all__ = [
    "DataError", "InputError", "MNISTData", "ModelFileError", "NbpruneError", "ScheduleError", "SimpleNN",
    "TensorLoader", "TrainingError", "evaluate", "input_box", "load_data", "load_pruned_model", "parameter_count",
    "train",
]
