"""Interval rules are sound: the plain operation on points inside the operands stays inside the result."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nbprune.interval import Interval

TOLERANCE = 1e-9
settings.register_profile("nbprune", max_examples=60, deadline=None)
settings.load_profile("nbprune")

values = st.floats(-50, 50, allow_nan=False, allow_infinity=False)


@st.composite
def intervals(draw, shape=(3, 4)):
    """Return (interval, a point inside it) for a random interval of float64 tensors."""
    count = shape[0] * shape[1] if len(shape) == 2 else shape[0]
    a = torch.tensor(draw(st.lists(values, min_size=count, max_size=count)), dtype=torch.float64).reshape(shape)
    b = torch.tensor(draw(st.lists(values, min_size=count, max_size=count)), dtype=torch.float64).reshape(shape)
    box = Interval.hull(a, b)
    t = torch.tensor(draw(st.lists(st.floats(0, 1), min_size=count, max_size=count)), dtype=torch.float64)
    return box, box.lower + t.reshape(shape) * box.width


def assert_inside(result: Interval, points: torch.Tensor):
    assert result.contains(points, TOLERANCE).all(), (result, points)


@given(intervals(), intervals())
def test_add_sub_mul_of_two_intervals(x, y):
    (a, p), (b, q) = x, y
    assert_inside(a + b, p + q)
    assert_inside(a - b, p - q)
    assert_inside(a * b, p * q)
    assert_inside(-a, -p)


@given(intervals(), values)
def test_scalars_on_either_side(x, c):
    a, p = x
    for result, point in ((a + c, p + c), (c + a, c + p), (a - c, p - c), (c - a, c - p), (a * c, p * c),
                          (c * a, c * p)):
        assert_inside(result, point)


@given(intervals(), intervals())
def test_tensors_on_either_side(x, y):
    (a, p), (_, t) = x, y
    for result, point in ((a + t, p + t), (t + a, t + p), (a - t, p - t), (t - a, t - p), (a * t, p * t),
                          (t * a, t * p)):
        assert_inside(result, point)


@given(intervals((3, 4)), intervals((4, 2)))
def test_matmul_with_intervals_and_tensors(x, y):
    (a, p), (b, q) = x, y
    assert_inside(a @ b, p @ q)
    assert_inside(a @ q, p @ q)
    assert_inside(p @ b, p @ q)


@given(intervals())
def test_relu_sigmoid_and_their_derivatives(x):
    a, p = x
    assert_inside(a.relu(), torch.relu(p))
    assert_inside(a.sigmoid(), torch.sigmoid(p))
    assert_inside(a.relu_derivative(), (p > 0).double())
    s = torch.sigmoid(p)
    assert_inside(a.sigmoid_derivative(), s * (1 - s))


@given(intervals())
def test_shape_transpose_indexing_width_midpoint(x):
    a, p = x
    assert a.shape == p.shape and a.T.shape == (4, 3)
    assert_inside(a.T, p.T)
    assert_inside(a[1], p[1])
    assert_inside(a[:, 2:], p[:, 2:])
    assert (a.width >= 0).all() and a.contains(a.midpoint).all()
    assert torch.equal(a.magnitude, torch.maximum(a.lower.abs(), a.upper.abs()))


def test_construction_checks_order_shape_and_nan():
    with pytest.raises(ValueError, match="lower <= upper"):
        Interval(torch.tensor([1.0]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="one shape"):
        Interval(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        Interval(torch.tensor([float("nan")]), torch.tensor([1.0]))


def test_rules_are_tight_on_simple_cases():
    a = Interval(torch.tensor([-1.0]), torch.tensor([2.0]))
    b = Interval(torch.tensor([3.0]), torch.tensor([4.0]))
    assert (a * b).lower.item() == -4 and (a * b).upper.item() == 8
    assert (a.relu()).lower.item() == 0 and a.relu_derivative().upper.item() == 1
    assert a.sigmoid_derivative().upper.item() == 0.25
