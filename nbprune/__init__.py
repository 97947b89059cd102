"""nbprune: interval-adjoint sensitivity guided node pruning of neural networks.

The method's public API, importable from here: `from nbprune import SimpleNN, load_data, IterativePruning`. The
course's helpers (the workbook, figures, diagnostics, exercises) live in `nbprune.course`, which the notebooks import.
Names load on first use, so `import nbprune` (and the `nbprune` command) starts without importing torch.
"""

from __future__ import annotations

import importlib
import sys

__version__ = "0.2.0"

# public name -> the module that defines it: the method's core only (nbprune.course re-exports what notebooks need)
_EXPORTS = {
    "config": ("RunConfig",),
    "errors": ("NbpruneError",),
    "datasets": ("Dataset", "declare"),
    "data": ("load_data", "load_arrays", "InputSpec", "DataSplits", "input_box"),
    "model": ("SimpleNN", "parameter_count"),
    "modelfile": ("load_pruned_model", "read_record"),
    "interval": ("Interval",),
    "criteria": ("significance", "node_significance", "interval_forward", "interval_adjoint", "IntervalAdjoint",
                 "PruningContext"),
    "prune": ("prune_nodes", "shrink"),
    "training": ("train", "fit"),
    "evaluation": ("evaluate", "loss_and_accuracy"),
    "retention": ("GeneratePruneData", "read_retain"),
    "session": ("Session",),
    "iterative": ("IterativePruning", "plan_run"),
    "teacher": ("train_teacher", "load_teacher"),
    "report": ("concatenate", "choose_iteration"),
    "export": ("export_model",),
    "sweeps": ("sweep", "sweep_report"),
}


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """Return a package's `__getattr__` that loads each exported name from its module on first use, and `__all__`
    (`exports`: module, relative to the package, -> the names it exports)."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            module = where[name]  # "x": package.x; "..x": a module beside the package (relative, as in an import)
            value = getattr(importlib.import_module(module if module.startswith(".") else f".{module}", package), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(where)


__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
