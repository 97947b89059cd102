"""Sweeps: a grid (or list) of settings times seeds, run as independent pruning chains on Ray, one session folder
each, the dense models shared; a results table and a report that compares them over seeds.

    from nbprune import sweep
    sweep(grid={"criterion": ["interval_adjoint", "magnitude"]}, seeds=[0, 1, 2], fixed={"epochs": 5},
          end_itr=8, dir="sweeps/criteria")

Names load on first use, so the command line reads a spec without importing torch or Ray.
"""

from __future__ import annotations

from .. import lazy_exports

_EXPORTS = {
    "spec": ("Chain", "SweepError", "SweepSpec", "expand", "read_spec", "spec_from_dict"),
    "engine": ("SweepFolder", "build_spec", "sweep"),
    "report": ("sweep_report",),
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
