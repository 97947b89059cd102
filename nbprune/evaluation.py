"""Loss and accuracy of a model on loaders, with the reference workflow's result keys."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import Loader, TensorLoader, iterate_flat

EVAL_BATCH = 8192


def model_device(model: nn.Module) -> torch.device:
    """Return the device of the model's parameters."""
    return next(model.parameters()).device


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, loader: Loader) -> tuple[float, float]:
    """Return (mean cross-entropy over samples, accuracy in %) of `model` on `loader`."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    if isinstance(loader, TensorLoader):
        all_inputs, all_targets = loader.dataset.data, loader.dataset.targets
        batches = ((all_inputs[i:i + EVAL_BATCH], all_targets[i:i + EVAL_BATCH])
                   for i in range(0, len(all_targets), EVAL_BATCH))
    else:
        batches = iterate_flat(loader)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for inputs, targets in batches:
        inputs, targets = inputs.to(device), targets.to(device)
        outputs = model(inputs)
        loss_sum += F.cross_entropy(outputs, targets, reduction="sum").double()
        correct += (outputs.argmax(dim=1) == targets).sum()
        count += len(targets)
    model.train(was_training)
    if count == 0:
        raise ValueError("the loader yielded no samples: expected at least one batch.")
    return loss_sum.item() / count, 100.0 * correct.item() / count


def evaluate(model: nn.Module, train_loader: Loader, test_loader: Loader) -> dict[str, float]:
    """Return the reference workflow's dict: Train_Loss, Test_Loss, Train_Accuracy, Test_Accuracy (accuracy in %)."""
    train_loss, train_accuracy = loss_and_accuracy(model, train_loader)
    test_loss, test_accuracy = loss_and_accuracy(model, test_loader)
    return {"Train_Loss": train_loss, "Test_Loss": test_loss,
            "Train_Accuracy": train_accuracy, "Test_Accuracy": test_accuracy}


def own_data_evaluation(model_file: str) -> str:
    """Return one line of Python that evaluates a model trained on a user's own tensors on that user's data."""
    return (f"from nbprune import SimpleNN, evaluate, load_arrays; model = SimpleNN.from_file({str(model_file)!r}); "
            f"data = load_arrays(train=(train_features, train_labels), test=(test_features, test_labels), "
            f"standardisation=(model.spec.mean, model.spec.std)); print(evaluate(model, data.train_loader, "
            f"data.test_loader))")
