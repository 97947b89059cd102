"""nbprune: interval-adjoint sensitivity guided node pruning of neural networks, as a library and a workbook.

Everything a notebook teaches is importable from here: `from nbprune import SimpleNN, load_data, IterativePruning`.
Names load on first use, so `import nbprune` (and the `nbprune` command) starts without importing torch.
"""

from __future__ import annotations

import importlib
import sys

__version__ = "0.2.0"

# public name -> the module that defines it
_EXPORTS = {
    "config": ("RunConfig", "DataConfig", "ModelConfig", "ScheduleConfig", "TrainConfig", "PruneConfig", "Controls",
               "SETTINGS"),
    "errors": ("NbpruneError", "ConfigError", "DataError", "InputError", "ModelFileError", "ScheduleError",
               "SessionError", "StorageError", "TrainingError"),
    "data": ("load_data", "load_arrays", "load_data_for", "input_box", "InputSpec", "DataSplits", "TensorLoader"),
    "model": ("SimpleNN", "parameter_count"),
    "modelfile": ("ModelRecord", "load_pruned_model", "read_record", "save_model_file"),
    "epoch": ("Trainer",),
    "fast_mlp": ("FlatMLPTrainer",),
    "interval": ("Interval",),
    "training": ("train", "fit"),
    "evaluation": ("evaluate", "loss_and_accuracy"),
    "io": ("write_text_atomic",),
    "criteria": ("significance", "node_significance", "interval_forward", "interval_adjoint", "PruningContext",
                 "CRITERIA", "IntervalAdjoint", "make_criterion"),
    "prune": ("prune_nodes", "keep_indices", "shrink"),
    "retention": ("GeneratePruneData", "schedule", "read_retain", "default_steps"),
    "session": ("Session",),
    "iterative": ("IterativePruning",),
    "teacher": ("ConvTeacher", "train_teacher", "save_teacher", "load_teacher"),
    "report": ("concatenate", "choose_iteration", "best_validation", "draw_choice", "plot_accuracies", "plot_losses"),
    "export": ("export_model", "run_standalone", "standalone_predictions"),
    "widgets": ("ScheduleEditor", "IterationPicker", "describe_iteration"),
    "workbook": ("setup", "trained_model", "plot_digits", "plot_class_balance", "plot_input_mask",
                 "plot_significance"),
    "sweeps": ("sweep", "sweep_report"),
    "primer": ("primer_network", "primer_box", "sample_box", "sampled_range", "as_pairs", "largest_change"),
    "diagnostics": ("rank_correlation", "pre_activations", "observed_ranges", "width_table", "contain_zero",
                    "derivative_intervals", "magnitude_correlations", "seed_correlations", "box_summary",
                    "outside_box", "constant_features", "constant_feature_shift", "neuron_costs",
                    "constant_feature_places", "correlation_words", "removal_effects", "removal_summary"),
    "figures": ("plot_primer_ranges", "plot_width_against_range", "plot_significance_distribution",
                "plot_comparison"),
    "exercises": ("check", "solution", "question", "questionnaire"),
    "compare": ("compare_criteria", "plan_comparison", "level_summary", "winners", "conclusion"),
}


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """Return a package's `__getattr__` that loads each exported name from its module on first use, and `__all__`."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(f".{where[name]}", package), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(where)


__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
