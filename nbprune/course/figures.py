"""Figures of the course: statistical plots (seaborn) that show and save themselves, as the notebooks draw them."""

from __future__ import annotations


# --- 00_intervals and 04_iterative_pruning (the interval primer, the criterion's diagnostics) ----------------------
def plot_primer_ranges(hidden_samples, hidden_box, output_samples, output_box, output_network: str = "",
                       path=None):
    """Return the primer's picture: the hidden pre-activations (z1, z2) the sampled inputs produce inside the
    interval box [z1] x [z2], and the outputs of a network (`output_network` says which, e.g. "W2 = (1, 1)") over
    the same inputs against its interval; save it when `path` is given."""
    import seaborn as sns
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from ..files import save_figure

    figure = Figure(figsize=(9, 3.8), layout="constrained")
    plane, line = figure.subplots(1, 2)
    low, high = hidden_box.lower.reshape(-1).tolist(), hidden_box.upper.reshape(-1).tolist()
    plane.add_patch(Rectangle((low[0], low[1]), high[0] - low[0], high[1] - low[1], fill=False, color="tab:red",
                              linewidth=2, label="interval box [z1] x [z2]"))
    plane.scatter(hidden_samples[:, 0], hidden_samples[:, 1], s=1, alpha=0.3,
                  label=f"(z1, z2) of {len(hidden_samples):,} sampled inputs")
    plane.set(xlabel="z1", ylabel="z2", title="hidden pre-activations", aspect="equal")
    plane.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), markerscale=8)  # below: off the points
    sns.histplot(x=output_samples.reshape(-1).tolist(), ax=line, bins=60, stat="density", color="tab:blue",
                 label="y of the sampled inputs")
    for position, bound in enumerate((output_box.lower.item(), output_box.upper.item())):
        line.axvline(bound, color="tab:red", linewidth=2, label="interval [y]" if position == 0 else None)
    network = f" of the network with {output_network}" if output_network else ""
    line.set(xlabel="output y", title=f"output y{network}")
    line.legend(fontsize=8, loc="upper right")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_width_against_range(table, path=None):
    """Return each neuron's interval width against the range the training images produce (log-log, one colour
    per layer, the dashed line where they are equal); `table` is nbprune.course.diagnostics.width_table's."""
    import seaborn as sns
    from matplotlib.figure import Figure

    from ..files import save_figure

    shown = table[(table["observed range"] > 0) & (table["interval width"] > 0)]
    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    sns.scatterplot(data=shown, x="observed range", y="interval width", hue="layer", s=12, alpha=0.7, ax=axes,
                    linewidth=0)
    ends = [min(shown["observed range"].min(), shown["interval width"].min()),
            max(shown["observed range"].max(), shown["interval width"].max())]
    axes.plot(ends, ends, "k--", linewidth=1, label="width = observed range")
    axes.set(xscale="log", yscale="log", xlabel="range of the pre-activation over the training images",
             ylabel="width of its interval over the box", title="Interval width against the observed range")
    axes.legend(fontsize=8)
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_significance_distribution(scores, path=None):
    """Return the distribution of the significance scores of each hidden layer (log scale; zero scores are
    counted in the legend, since a log axis cannot show them); save it when `path` is given."""
    import pandas as pd
    import seaborn as sns
    from matplotlib.figure import Figure

    from ..files import save_figure

    def label(k: int, score) -> str:
        zeros = int((score <= 0).sum())
        return f"hidden {k}" + (f" ({zeros} scores of 0 not shown)" if zeros else "")

    rows = [{"layer": label(k, score), "significance": float(value)}
            for k, score in enumerate(scores, start=1) for value in score if value > 0]
    figure = Figure(figsize=(7, 3.8), layout="constrained")
    axes = figure.add_subplot()
    sns.histplot(data=pd.DataFrame(rows), x="significance", hue="layer", log_scale=True, element="step",
                 stat="density", common_norm=False, ax=axes)
    axes.set(title="Significance of the hidden neurons, per layer")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_removal_against_significance(effects, significance, layer: str = "the last hidden layer", path=None):
    """Return, for each neuron of one layer, the change of the validation loss and accuracy its removal alone causes
    (nbprune.course.diagnostics.removal_effects' table) against its significance, with Spearman's rank correlation in
    each panel's title; save it when `path` is given."""
    import seaborn as sns
    from matplotlib.figure import Figure

    from .diagnostics import rank_correlation
    from ..files import save_figure

    import torch

    scores = torch.as_tensor(significance).reshape(-1).double()
    shown = effects.assign(significance=scores.tolist(), **{"accuracy drop": -effects["accuracy change"]})
    figure = Figure(figsize=(9, 3.8), layout="constrained")
    for axes, column, label in zip(figure.subplots(1, 2), ("loss change", "accuracy drop"),
                                   ("validation loss increase", "validation accuracy drop (points)")):
        sns.scatterplot(data=shown, x="significance", y=column, s=18, ax=axes, linewidth=0)
        axes.axhline(0, color="gray", linewidth=0.8)
        correlation = rank_correlation(scores, torch.tensor(shown[column].to_numpy(), dtype=torch.float64))
        axes.set(xscale="log" if (scores > 0).all() else "linear", xlabel="significance", ylabel=label,
                 title=f"Spearman's rank correlation {correlation:.2f}")
        axes.grid(True, alpha=0.3)
    figure.suptitle(f"Each neuron of {layer} removed alone (activation fixed at 0, no retraining): above 0, the "
                    f"removal hurts", fontsize=10)
    if path is not None:
        save_figure(figure, path)
    return figure


# --- 07_compare (the criteria compared) ------------------------------------------------------------------------
def plot_comparison(table, dense=None, path=None):
    """Return validation and test accuracy against parameters, one line per method (nbprune.course.compare's table),
    with a band from the lowest to the highest seed when there are several (two or three seeds make no 95% confidence
    interval worth the name); `dense` (a Session.summary() record) draws the dense model's accuracy; save it when
    `path` is given. The methods' points are spread a little sideways around each level, so that no marker hides
    another."""
    import pandas as pd
    import seaborn as sns
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    from .compare import METHODS
    from ..files import save_figure

    seeds = table["seed"].nunique()
    order = [method for method in METHODS if method in set(table["method"])]
    shift = {method: 10 ** (0.02 * (position - (len(order) - 1) / 2)) for position, method in enumerate(order)}
    placed = table.assign(x=table["parameters"] * table["method"].map(shift))
    long = pd.concat([placed.assign(split=split, accuracy=placed[column])
                      for split, column in (("validation (chooses)", "val_accuracy"),
                                            ("test (only reported)", "test_accuracy"))])
    markers = dict(zip(METHODS, ("o", "X", "s", "P", "D")))
    figure = Figure(figsize=(10, 4.4), layout="constrained")
    panels = figure.subplots(1, 2, sharey=True)
    levels = table.drop_duplicates("parameters").sort_values("parameters")
    for axes, (split, rows) in zip(panels, long.groupby("split", sort=False)):
        sns.lineplot(data=rows, x="x", y="accuracy", hue="method", hue_order=order, style="method",
                     style_order=order, markers=markers, dashes=False, errorbar=("pi", 100) if seeds > 1 else None,
                     seed=0, ax=axes, legend=axes is panels[0], markersize=7, alpha=0.85)
        if dense is not None:
            key = "Val_Accuracy" if split.startswith("validation") else "Test_Accuracy"
            axes.axhline(dense[key], color="gray", linestyle=":", label="dense model (iteration 0)")
        axes.set(xscale="log", xlabel="parameters (log scale) and hidden neurons", ylabel="accuracy (%)",
                 title=split)
        axes.set_xticks(levels["parameters"], [f"{count:,}\n{hidden}" for count, hidden in
                                               zip(levels["parameters"], levels["hidden"])], minor=False)
        axes.xaxis.set_minor_locator(NullLocator())
        axes.grid(True, alpha=0.3)
    shown = [*long["accuracy"], *([dense["Val_Accuracy"], dense["Test_Accuracy"]] if dense is not None else [])]
    spread = (max(shown) - min(shown)) or 1.0
    panels[0].set_ylim(min(shown) - 0.08 * spread, max(shown) + 0.08 * spread)  # the dense line inside the frame
    panels[0].legend(fontsize=8)
    bands = f"bands: lowest to highest of {seeds} seeds" if seeds > 1 else "one seed: no bands"
    figure.suptitle(f"Each method from the same dense model, on one training budget ({bands});\nat each level the "
                    f"methods' points are set a little apart, so that none hides another", fontsize=10)
    if path is not None:
        save_figure(figure, path)
    return figure


def _class_names(classes, *labels) -> list[str]:
    """Return the class names to show: the given ones, else "0", "1", ... up to the largest label."""
    if classes is not None:
        return list(classes)
    return [str(k) for k in range(1 + max(int(label) for group in labels if group is not None for label in group))]


def plot_digits(images, labels, predictions=None, columns: int = 8, path=None, classes=None):
    """Return a grid of images (height x width, values in [0, 1]) titled with their labels (and predictions); save it
    when `path` is given."""
    from matplotlib.figure import Figure

    from ..files import save_figure

    names = _class_names(classes, labels, predictions)
    rows = -(-len(images) // columns)
    figure = Figure(figsize=(1.2 * columns, 1.35 * rows), layout="constrained")
    for index, image in enumerate(images):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(image.squeeze().cpu(), cmap="gray", vmin=0, vmax=1)
        title, colour = names[int(labels[index])], "black"
        if predictions is not None:
            title += f"\npredicted {names[int(predictions[index])]}"
            colour = "black" if int(predictions[index]) == int(labels[index]) else "red"
        axes.set_title(title, fontsize=7, color=colour)
        axes.axis("off")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_class_balance(splits, path=None, classes=None):
    """Return grouped bars of each split's share of every class (labels per split); save it when `path` is given."""
    from collections import Counter

    from matplotlib.figure import Figure

    from ..files import save_figure

    names = _class_names(classes, *splits.values())
    figure = Figure(figsize=(8, 3.8), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / len(splits)
    for position, (name, labels) in enumerate(splits.items()):
        counts = Counter(int(label) for label in labels)
        shares = [100 * counts[k] / len(labels) for k in range(len(names))]
        axes.bar([k + (position - (len(splits) - 1) / 2) * width for k in range(len(names))], shares, width,
                 label=f"{name} ({len(labels):,})")
    axes.axhline(100 / len(names), color="gray", linestyle=":", linewidth=1)
    axes.set(xticks=range(len(names)), xlabel="class", ylabel="% of the split", title="Class balance",
             ylim=(0, 1.3 * axes.get_ylim()[1]))
    axes.set_xticklabels(names, rotation=30 if max(map(len, names)) > 2 else 0, fontsize=8)
    axes.legend(fontsize=8, loc="upper center", ncols=len(splits))
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_input_mask(scores, kept, shape, path=None):
    """Return the input features' significance as an image of `shape` (the data's image_shape) beside the mask of
    the ones kept (white: kept). Features that are not pixels (`shape` None) have no picture: say so, return None."""
    if shape is None:
        print(f"your data are rows of {scores.numel()} features, not images: there is no picture of the inputs kept "
              f"({len(kept)} of {scores.numel()}); their significances are in the scores above.")
        return None
    import torch
    from matplotlib.figure import Figure

    from ..files import save_figure

    figure = Figure(figsize=(7.6, 3.4), layout="constrained")
    figure.get_layout_engine().set(wspace=0.12)  # room between the colour bar's labels and the mask
    heat, mask = figure.subplots(1, 2)
    image = heat.imshow(scores.reshape(*shape).cpu(), cmap="viridis")
    figure.colorbar(image, ax=heat, shrink=0.8, label="significance (width x max |adjoint|)")
    kept_mask = torch.zeros(scores.numel())
    kept_mask[kept] = 1
    mask.imshow(kept_mask.reshape(*shape), cmap="gray", vmin=0, vmax=1)
    heat.set_title("significance of each input pixel", fontsize=9)
    mask.set_title(f"{len(kept)} of {scores.numel()} pixels kept (white)", fontsize=9)
    for axes in (heat, mask):
        axes.set(xticks=[], yticks=[])  # a frame, so that kept (white) pixels at the edge show where the image ends
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_significance(scores, kept, layer: int = 1, path=None):
    """Return one layer's significance scores, highest first, coloured by whether the neuron is kept."""
    import torch
    from matplotlib.figure import Figure

    from ..files import save_figure

    order = torch.sort(scores, descending=True, stable=True).indices
    survives = torch.zeros(len(scores), dtype=torch.bool)
    survives[kept] = True
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    axes = figure.add_subplot()
    colours = ["tab:green" if survives[i] else "tab:gray" for i in order]
    axes.bar(range(len(scores)), scores[order], width=1.0, color=colours)
    axes.set(xlabel="neurons, most significant first",
             ylabel="significance", title=f"Hidden layer {layer}: {len(kept)} of {len(scores)} neurons survive "
                                            f"(green)")
    if path is not None:
        save_figure(figure, path)
    return figure


def show_inputs(data, inputs, labels, predictions=None, path=None):
    """Return a grid of some inputs as images titled with their labels (and predictions, mistakes in red); data of
    flat features has no pictures: print how many rows of how many features there are instead and return None."""
    if not data.images:
        print(f"your data are rows of {data.spec.features} features, not images: there are no pictures to show "
              f"({len(inputs)} rows here, classes {', '.join(data.classes[int(k)] for k in labels[:8])}"
              f"{', ...' if len(labels) > 8 else ''}).")
        return None
    return plot_digits(data.to_pixels(inputs), labels, predictions, path=path, classes=data.classes)


# --- 08_conv (channel pruning of a convolutional network) --------------------------------------------------------
def plot_filters(filters, kept, path=None):
    """Return a grid of a convolution's filters ([channels, 1, k, k]): the kept ones in colour, the removed ones
    greyed and crossed out, each titled with its channel number; save it when `path` is given."""
    import math

    from matplotlib.figure import Figure

    from ..files import save_figure

    filters = filters.detach().cpu()
    kept = set(int(index) for index in kept)
    columns = min(10, len(filters))
    rows = math.ceil(len(filters) / columns)
    scale = float(filters.abs().max()) or 1.0
    figure = Figure(figsize=(1.0 * columns + 0.6, 1.15 * rows + 0.5), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(grid.flat):
        axes.set(xticks=[], yticks=[])
        if index >= len(filters):
            axes.set_axis_off()
            continue
        removed = index not in kept
        axes.imshow(filters[index, 0], cmap="Greys" if removed else "RdBu_r", vmin=-scale, vmax=scale,
                    alpha=0.35 if removed else 1.0)
        if removed:
            size = filters.shape[-1] - 1
            axes.plot([0, size], [0, size], color="tab:red", linewidth=1)
            axes.plot([0, size], [size, 0], color="tab:red", linewidth=1)
        axes.set_title(f"{index}{' removed' if removed else ''}", fontsize=7,
                       color="tab:red" if removed else "black")
    figure.suptitle(f"conv1's filters: {len(kept)} of {len(filters)} kept (colour; red: weight > 0, blue: < 0), "
                    f"{len(filters) - len(kept)} removed (grey, crossed)", fontsize=9)
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_accuracy_against_parameters(rows, path=None):
    """Return validation and test accuracy against parameters (log scale) for a run's iterations (rows with
    iteration, units, parameters, val_accuracy, test_accuracy), each point labelled with its units."""
    from matplotlib.figure import Figure

    from ..files import save_figure

    figure = Figure(figsize=(7, 3.8), layout="constrained")
    axes = figure.add_subplot()
    parameters = [row.parameters for row in rows]
    axes.plot(parameters, [row.val_accuracy for row in rows], "o-", label="validation")
    axes.plot(parameters, [row.test_accuracy for row in rows], "s--", label="test", alpha=0.7)
    for row in rows:
        axes.annotate("-".join(map(str, row.units)), (row.parameters, row.val_accuracy), fontsize=7,
                      textcoords="offset points", xytext=(0, 6), ha="center")
    axes.set(xscale="log", xlabel="parameters (log scale)", ylabel="accuracy (%)",
             title="Accuracy against parameters (labels: the units kept per layer)")
    axes.margins(x=0.08, y=0.12)  # room for the labels above the points
    axes.legend()
    if path is not None:
        save_figure(figure, path)
    return figure
