"""The fast path for plain MLPs: one epoch with a hand-written backward pass and one fused AdamW call per step.

For logits o = W h + b, dL/dW = g^T h, dL/db = sum g, and the gradient flowing back is g W times the activation's
derivative. The parameters live in one flat buffer (the layers hold views of it) so that AdamW updates them all in
one call. Tests check every step against autograd (the Trainer in nbprune.epoch).
"""

from __future__ import annotations

import torch
from torch import nn

from .data import Loader
from .epoch import Augment, Trainer, adamw, batches
from .errors import NbpruneError
from .model import KeepInputs, mlp_layers


class FlatMLPTrainer(Trainer):
    """The Trainer's epoch for MLPs of nn.Linear with nn.ReLU or nn.Sigmoid between them, without autograd."""

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, teacher: nn.Module | None = None,
                 distill_weight: float | None = None, temperature: float | None = None, augment: Augment | None = None):
        layers = mlp_layers(model)
        self.keep = layers[0].index if isinstance(layers[0], KeepInputs) else None
        self.layers = [layer for layer in layers if not isinstance(layer, KeepInputs)]
        self.linears = [layer for layer in self.layers if isinstance(layer, nn.Linear)]
        self.activations = [type(layer) for layer in self.layers if not isinstance(layer, nn.Linear)]
        reference = self.linears[0].weight
        total = sum(layer.weight.numel() + layer.bias.numel() for layer in self.linears)
        flat = torch.empty(total, device=reference.device, dtype=reference.dtype)
        self.flat = nn.Parameter(flat)
        self.flat.grad = torch.zeros_like(flat)
        self.grads: list[tuple[torch.Tensor, torch.Tensor]] = []
        offset = 0
        with torch.no_grad():
            for layer in self.linears:
                views = []
                for name in ("weight", "bias"):
                    tensor = getattr(layer, name)
                    size = tensor.numel()
                    self.flat[offset:offset + size].copy_(tensor.reshape(-1))
                    setattr(layer, name, nn.Parameter(self.flat[offset:offset + size].view_as(tensor)))
                    views.append(self.flat.grad[offset:offset + size].view_as(tensor))
                    offset += size
                self.grads.append((views[0], views[1]))
        super().__init__(model, lr, weight_decay, teacher, distill_weight, temperature, augment)
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
        self.steps = torch.zeros((), dtype=torch.float32, device=flat.device)

    def make_optimizer(self, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        return adamw([self.flat], lr, weight_decay)  # holds the learning rate for the scheduler

    def _adamw_step(self) -> None:
        """Apply AdamW to the flat buffer: the kernel torch's fused AdamW runs, without its per-call bookkeeping."""
        if not hasattr(torch, "_fused_adamw_") or self.flat.device.type not in ("cpu", "cuda"):
            self.optimizer.step()
            return
        group = self.optimizer.param_groups[0]
        self.steps += 1
        torch._fused_adamw_([self.flat], [self.flat.grad], [self.exp_avg], [self.exp_avg_sq], [], [self.steps],
                            lr=group["lr"], beta1=group["betas"][0], beta2=group["betas"][1],
                            weight_decay=group["weight_decay"], eps=group["eps"], amsgrad=False, maximize=False)

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        """Return whether `model` is a plain MLP of biased linear layers with ReLU/Sigmoid between them."""
        try:
            layers = [layer for layer in mlp_layers(model) if not isinstance(layer, KeepInputs)]
        except NbpruneError:
            return False
        linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
        alternating = all(isinstance(a, nn.Linear) != isinstance(b, nn.Linear) for a, b in zip(layers, layers[1:]))
        return (bool(linears) and isinstance(layers[0], nn.Linear) and isinstance(layers[-1], nn.Linear)
                and alternating and all(layer.bias is not None for layer in linears)
                and not any(module._forward_hooks or module._forward_pre_hooks for module in model.modules()))

    @torch.no_grad()
    def epoch(self, loader: Loader, device: torch.device,
              soft_targets: torch.Tensor | None = None) -> tuple[float, float]:
        linears, grads = self.linears, self.grads
        relus = [activation is nn.ReLU for activation in self.activations]
        temperature, weight = self.temperature, self.distill_weight
        rows, minus_one = torch.arange(0, device=device), torch.tensor(-1.0, dtype=self.flat.dtype, device=device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        count = 0
        for inputs, targets, soft in batches(loader, device, soft_targets, self.augment):
            batch = len(targets)
            hidden = [inputs if self.keep is None else inputs.index_select(1, self.keep)]
            for position, layer in enumerate(linears[:-1]):
                value = torch.addmm(layer.bias, hidden[-1], layer.weight.t())
                hidden.append(value.relu_() if relus[position] else value.sigmoid_())
            outputs = torch.addmm(linears[-1].bias, hidden[-1], linears[-1].weight.t())
            log_probabilities = outputs.log_softmax(dim=1)
            loss = -log_probabilities.gather(1, targets[:, None]).mean()
            gradient = log_probabilities.exp_()
            if len(rows) < batch:
                rows = torch.arange(batch, device=device)
            gradient.index_put_((rows[:batch], targets), minus_one, accumulate=True)
            if self.teacher is not None:
                soft = self.soft(inputs, soft)
                log_student = (outputs / temperature).log_softmax(dim=1)
                distill = (soft * (soft.clamp_min(1e-12).log() - log_student)).sum() / batch
                loss = (1 - weight) * loss + weight * temperature ** 2 * distill
                gradient = gradient.mul_(1 - weight).add_(log_student.exp_().sub_(soft), alpha=weight * temperature)
            gradient.div_(batch)
            for position in range(len(linears) - 1, -1, -1):
                weight_grad, bias_grad = grads[position]
                torch.mm(gradient.t(), hidden[position], out=weight_grad)
                torch.sum(gradient, dim=0, out=bias_grad)
                if position:
                    gradient = gradient.mm(linears[position].weight)
                    below = hidden[position]
                    gradient = (torch.ops.aten.threshold_backward(gradient, below, 0) if relus[position - 1]
                                else gradient.mul_(below * (1 - below)))
            self.next_rate()
            self._adamw_step()
            loss_sum += loss * batch
            correct += (outputs.argmax(dim=1) == targets).sum()
            count += batch
        return loss_sum.item() / max(count, 1), 100.0 * correct.item() / max(count, 1)

    def finish(self) -> nn.Module:
        """Give every layer its own parameters again (no views of the flat buffer) and return the model."""
        for layer in self.linears:
            layer.weight = nn.Parameter(layer.weight.detach().clone())
            layer.bias = nn.Parameter(layer.bias.detach().clone())
        return self.model
