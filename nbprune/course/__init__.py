"""The course's wing: what the workbook's notebooks import to teach the method (`from nbprune.course import ...`).

The notebooks' helpers live here: the workbook (parameters cells, setup, headless runs), the widgets, the figures,
the diagnostics that measure what a notebook claims, the primer's hand-sized network, the exercises and
questionnaires, 07's comparison and the Lab hook. For convenience this package also re-exports the names of the
method's core (`nbprune`) that the notebooks use, so a notebook imports from one place. Names load on first use.
"""

from __future__ import annotations

from .. import lazy_exports

# public name -> the module that defines it, relative to nbprune.course ("..x": a module of the core, nbprune.x)
_EXPORTS = {
    "workbook": ("setup", "trained_model"),
    "widgets": ("ScheduleEditor", "IterationPicker", "describe_iteration"),
    "figures": ("show_inputs", "plot_digits", "plot_class_balance", "plot_input_mask", "plot_significance",
                "plot_primer_ranges", "plot_width_against_range", "plot_significance_distribution",
                "plot_removal_against_significance", "plot_comparison", "plot_filters",
                "plot_accuracy_against_parameters"),
    "diagnostics": ("rank_correlation", "correlation_words", "pre_activations", "observed_ranges", "width_table",
                    "contain_zero", "derivative_intervals", "magnitude_correlations", "seed_correlations",
                    "box_summary", "outside_box", "constant_features", "constant_feature_places",
                    "constant_feature_shift", "neuron_costs", "removal_effects", "removal_summary"),
    "primer": ("primer_network", "primer_box", "sample_box", "sampled_range", "as_pairs", "largest_change"),
    "conv": ("hand_box", "hand_network", "hand_passes", "as_grid", "sampled_check", "conv_session", "shapes",
             "shape_lines", "first_cut", "standalone_accuracy", "library_accuracy", "require_architecture",
             "has_images", "without_images"),
    "exercises": ("check", "solution", "question", "questionnaire"),
    "compare": ("compare_criteria", "plan_comparison", "level_summary", "winners", "conclusion",
                "against_benchmark"),
    # the method's core, as the notebooks use it
    "..config": ("RunConfig",),
    "..data": ("load_data", "load_data_for", "input_box"),
    "..model": ("SimpleNN", "parameter_count"),
    "..modelfile": ("load_pruned_model", "read_record"),
    "..interval": ("Interval",),
    "..criteria": ("significance", "node_significance", "interval_forward", "interval_adjoint", "PruningContext"),
    "..prune": ("prune_nodes", "keep_indices"),
    "..training": ("train",),
    "..evaluation": ("evaluate", "loss_and_accuracy"),
    "..retention": ("schedule", "default_steps", "read_retain", "GeneratePruneData"),
    "..session": ("Session",),
    "..iterative": ("IterativePruning", "plan_run"),
    "..channels": ("aggregate_positions",),
    "..architectures": ("count_parameters",),
    "..report": ("concatenate", "choose_iteration", "best_validation"),
    "..export": ("export_model", "example_inputs", "run_standalone", "standalone_predictions"),
    "..files": ("write_text_atomic",),
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
