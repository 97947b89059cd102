"""Interval: a pair of tensors lower <= upper, with one sound rule per arithmetic operation."""

from __future__ import annotations

from numbers import Real
from typing import Union

import torch

Operand = Union["Interval", torch.Tensor, Real]


class Interval:
    """Every value between `lower` and `upper`, elementwise; each operation returns an enclosure of its results."""

    def __init__(self, lower: torch.Tensor | Real, upper: torch.Tensor | Real | None = None):
        lower = torch.as_tensor(lower)
        upper = lower if upper is None else torch.as_tensor(upper)
        if lower.shape != upper.shape:
            raise ValueError(f"Interval bounds must have one shape: lower {list(lower.shape)}, "
                             f"upper {list(upper.shape)}.")
        if torch.isnan(lower).any() or torch.isnan(upper).any():
            raise ValueError("Interval bounds contain NaN: expected real numbers.")
        if (lower > upper).any():
            worst = (lower - upper).max().item()
            raise ValueError(f"Interval needs lower <= upper everywhere; lower exceeds upper by up to {worst:g}. "
                             f"Swap the bounds or build it with Interval.hull(a, b).")
        self.lower, self.upper = lower, upper

    @staticmethod
    def hull(a: torch.Tensor, b: torch.Tensor) -> "Interval":
        """Return the smallest interval holding both a and b, elementwise."""
        return Interval(torch.minimum(a, b), torch.maximum(a, b))

    def _lift(self, other: Operand) -> "Interval":
        """Return `other` as an interval; plain numbers take this interval's dtype so no precision is lost."""
        if isinstance(other, Interval):
            return other
        if not isinstance(other, torch.Tensor):
            other = torch.as_tensor(other, dtype=self.lower.dtype, device=self.lower.device)
        return Interval(other)

    # --- arithmetic --------------------------------------------------------------------------------------------
    def __add__(self, other: Operand) -> "Interval":
        other = self._lift(other)
        return Interval(self.lower + other.lower, self.upper + other.upper)

    __radd__ = __add__

    def __neg__(self) -> "Interval":
        return Interval(-self.upper, -self.lower)

    def __sub__(self, other: Operand) -> "Interval":
        return self + (-self._lift(other))

    def __rsub__(self, other: Operand) -> "Interval":
        return self._lift(other) + (-self)

    def __mul__(self, other: Operand) -> "Interval":
        other = self._lift(other)
        products = torch.stack(torch.broadcast_tensors(
            self.lower * other.lower, self.lower * other.upper, self.upper * other.lower, self.upper * other.upper))
        return Interval(products.min(dim=0).values, products.max(dim=0).values)

    __rmul__ = __mul__

    def __matmul__(self, other: Operand) -> "Interval":
        """[A] @ [B] in midpoint-radius form: mid(A) @ mid(B) +- (|mid A| rad B + rad A |mid B| + rad A rad B)."""
        other = self._lift(other)
        center = self.midpoint @ other.midpoint
        radius = (self.midpoint.abs() @ other.radius + self.radius @ other.midpoint.abs()
                  + self.radius @ other.radius)
        return Interval(center - radius, center + radius)

    def __rmatmul__(self, other: Operand) -> "Interval":
        return self._lift(other) @ self

    # --- elementwise functions ---------------------------------------------------------------------------------
    def relu(self) -> "Interval":
        return Interval(self.lower.clamp(min=0), self.upper.clamp(min=0))

    def sigmoid(self) -> "Interval":
        return Interval(torch.sigmoid(self.lower), torch.sigmoid(self.upper))

    def relu_derivative(self) -> "Interval":
        """Return the interval of (x > 0) over this interval: the ReLU's derivative."""
        return Interval((self.lower > 0).to(self.lower.dtype), (self.upper > 0).to(self.upper.dtype))

    def sigmoid_derivative(self) -> "Interval":
        """Return the interval of s(x)(1 - s(x)), which peaks at x = 0 and falls with |x|."""
        def slope(x):
            s = torch.sigmoid(x)
            return s * (1 - s)
        at_lower, at_upper = slope(self.lower), slope(self.upper)
        spans_zero = (self.lower <= 0) & (self.upper >= 0)
        upper = torch.where(spans_zero, torch.full_like(at_lower, 0.25), torch.maximum(at_lower, at_upper))
        return Interval(torch.minimum(torch.minimum(at_lower, at_upper), upper), upper)

    # --- shape and summaries -----------------------------------------------------------------------------------
    @property
    def width(self) -> torch.Tensor:
        return self.upper - self.lower

    @property
    def midpoint(self) -> torch.Tensor:
        return (self.lower + self.upper) / 2

    @property
    def radius(self) -> torch.Tensor:
        return (self.upper - self.lower) / 2

    @property
    def magnitude(self) -> torch.Tensor:
        """Return max(|lower|, |upper|): the largest absolute value in the interval."""
        return torch.maximum(self.lower.abs(), self.upper.abs())

    @property
    def shape(self) -> torch.Size:
        return self.lower.shape

    @property
    def T(self) -> "Interval":
        return Interval(self.lower.T, self.upper.T)

    def reshape(self, *shape: int) -> "Interval":
        """Return the same values in another shape (as torch.Tensor.reshape)."""
        return Interval(self.lower.reshape(*shape), self.upper.reshape(*shape))

    def __getitem__(self, index) -> "Interval":
        return Interval(self.lower[index], self.upper[index])

    def __len__(self) -> int:
        return len(self.lower)

    def contains(self, points: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
        """Return, elementwise, whether `points` lie inside the interval (widened by `tolerance`)."""
        return (points >= self.lower - tolerance) & (points <= self.upper + tolerance)

    def __repr__(self) -> str:
        return f"Interval(lower={self.lower}, upper={self.upper})"
