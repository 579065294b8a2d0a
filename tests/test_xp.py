"""The rules run on any array library that follows the array API standard: the namespace
comes from ``x.__array_namespace__()`` (as jax.numpy's arrays, also under ``jax.jit``, name
theirs). array_api_strict is the standard's reference: it refuses anything outside it."""

from __future__ import annotations

import array_api_strict as strict
import numpy as np
import pytest

from ravine.rules import SPECS
from ravine.rules import step as rule_step
from ravine.rules._xp import ArrayApiNamespace, namespace


def _run(spec, hp, asarray, p0, grads):
    """Five steps of ``spec`` on arrays made by ``asarray``, as NumPy float64 at the end."""
    p = asarray(p0)
    state = spec.init(p, **{name: hp[name] for name in spec.init_args})
    for t, g in enumerate(grads, start=1):
        g = rule_step.effective_gradient(p, asarray(g), hp)
        scalars = spec.group_scalars([g]) if spec.group_scalars else {}
        p, state = rule_step.update(spec, p, g, state, t=t, hp=hp, scalars=scalars)
    return np.asarray(p, dtype=np.float64)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_rules_on_an_array_api_namespace_equal_numpy(spec, weight_decay):
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(7)
    grads = [rng.standard_normal(7) for _ in range(5)]
    grads[2][3] = 0.0  # a coordinate without gradient for a step
    hp = {**spec.defaults, "lr": 0.05, "weight_decay": weight_decay}
    ours = _run(spec, hp, lambda a: strict.asarray(a, dtype=strict.float64), p0, grads)
    reference = _run(spec, hp, np.asarray, p0, grads)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-15)
    assert not np.allclose(ours, p0)  # the parameters moved


def test_namespace_dispatch():
    x = strict.asarray([1.0, float("nan"), -3.0], dtype=strict.float32)
    xp = namespace(x)
    assert isinstance(xp, ArrayApiNamespace) and namespace(x * 2) is xp
    floored = np.asarray(xp.floor(x, 0.5))
    assert floored[0] == 1.0 and floored[2] == 0.5
    assert np.isnan(floored[1])  # NaN propagates, as np.maximum
    total = xp.sum_squares(strict.asarray([3.0, 4.0], dtype=strict.float32))
    assert total.dtype == strict.float32 and float(total) == 25.0
    # NumPy arrays and numbers keep the NumPy namespace; tensors torch's
    assert type(namespace(np.ones(2))).__name__ == "_NumpyNamespace"
    assert type(namespace(1.5)).__name__ == "_NumpyNamespace"
