"""Sweeps: a grid (or list) of settings times seeds, run as independent pruning chains on Ray, one session folder
each, the dense models shared; a results table and a report that compares them over seeds.

    from nbprune import sweep
    sweep(grid={"criterion": ["interval_adjoint", "magnitude"]}, seeds=[0, 1, 2], fixed={"epochs": 5},
          end_itr=8, dir="sweeps/criteria")

Names load on first use, so the command line reads a spec without importing torch or Ray.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "spec": ("Chain", "SweepError", "SweepSpec", "expand", "read_spec", "spec_from_dict"),
    "engine": ("SweepFolder", "build_spec", "sweep"),
    "report": ("sweep_report",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nbprune.sweep' has no attribute {name!r}")
