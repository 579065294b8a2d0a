"""Array namespaces: the few operations a rule needs beyond arithmetic operators.

A rule is written once against ``xp = namespace(x)`` and runs unchanged on

* NumPy arrays (the reference, and the lab's engine),
* torch tensors (the per-tensor torch engine),
* any array library that follows the array API standard (``x.__array_namespace__()``,
  e.g. ``jax.numpy``, also under ``jax.jit``), through :class:`ArrayApiNamespace`,
* a type that brings its own namespace as an ``_xp`` attribute: the foreach engine's
  batches of tensors, the code generator's symbolic values.

This module knows no engine: engines plug in through the ``_xp`` attribute.

Operators (``+ - * /``, unary ``-``, ``**`` on scalars) come from the arrays themselves;
``namespace(x)`` adds ``sqrt``, ``sum_squares`` and ``floor``. Scalars (Python numbers,
0-d tensors) may stand on either side of an operator.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

Array = Any  # a NumPy array, a torch tensor, an array API array, a batch, or a scalar
"""What a rule computes with; kept abstract so one function serves every backend."""


class Namespace(Protocol):
    """The operations a rule may call besides arithmetic operators."""

    def sqrt(self, x: Array) -> Array: ...

    def sum_squares(self, x: Array) -> Array:
        """Σ x², as a scalar of at least float32 precision."""
        ...

    def floor(self, x: Array, low: float) -> Array:
        """max(x, low), elementwise."""
        ...

    def zeros_like(self, x: Array) -> Array: ...

    def full_like(self, x: Array, value: float) -> Array: ...


class _NumpyNamespace:
    def sqrt(self, x: Array) -> Array:
        return np.sqrt(x)

    def sum_squares(self, x: Array) -> Array:
        x = np.asarray(x)
        wide = x if x.dtype.itemsize >= 4 else x.astype(np.float32)
        return np.sum(wide * wide)

    def floor(self, x: Array, low: float) -> Array:
        return np.maximum(x, low)

    def zeros_like(self, x: Array) -> Array:
        return np.zeros_like(x)

    def full_like(self, x: Array, value: float) -> Array:
        return np.full_like(x, value)


class _TorchNamespace:
    def __init__(self, torch: Any) -> None:
        self._torch = torch

    def sqrt(self, x: Array) -> Array:
        return self._torch.sqrt(x)

    def sum_squares(self, x: Array) -> Array:
        # bf16/fp16 sums lose the norm; accumulate in float32 at least.
        wide = x if x.element_size() >= 4 else x.float()
        return (wide * wide).sum()

    def floor(self, x: Array, low: float) -> Array:
        return self._torch.clamp(x, min=low)

    def zeros_like(self, x: Array) -> Array:
        return self._torch.zeros_like(x, memory_format=self._torch.preserve_format)

    def full_like(self, x: Array, value: float) -> Array:
        return self._torch.full_like(x, value, memory_format=self._torch.preserve_format)


class ArrayApiNamespace:
    """The operations a rule needs, from an array API standard namespace ``xp``
    (``x.__array_namespace__()``): traceable, so it runs under ``jax.jit`` too."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    def sqrt(self, x: Array) -> Array:
        return self.xp.sqrt(x)

    def sum_squares(self, x: Array) -> Array:
        xp = self.xp
        wide = x if xp.finfo(x.dtype).bits >= 32 else xp.astype(x, xp.float32)
        return xp.sum(wide * wide)

    def floor(self, x: Array, low: float) -> Array:
        # NaN propagates (x != x keeps x), as np.maximum and torch.clamp do
        return self.xp.where((x != x) | (x > low), x, self.xp.asarray(low, dtype=x.dtype))

    def zeros_like(self, x: Array) -> Array:
        return self.xp.zeros_like(x)

    def full_like(self, x: Array, value: float) -> Array:
        return self.xp.full_like(x, value)


_NUMPY = _NumpyNamespace()
_array_api: dict[int, ArrayApiNamespace] = {}
_torch_namespace: _TorchNamespace | None = None


def _torch_ns() -> _TorchNamespace:
    global _torch_namespace
    if _torch_namespace is None:  # torch is optional: import it only once a tensor shows up
        import torch

        _torch_namespace = _TorchNamespace(torch)
    return _torch_namespace


def namespace(x: Array) -> Namespace:
    """The namespace of ``x``: its own ``_xp`` if its type brings one, torch's for tensors,
    NumPy's for NumPy arrays and Python numbers, else the array API namespace ``x`` names
    (``x.__array_namespace__()``)."""
    kind = type(x)
    if hasattr(kind, "_xp"):
        return x._xp
    if kind.__module__.startswith("torch"):
        return _torch_ns()
    if kind.__module__.startswith("numpy") or not hasattr(x, "__array_namespace__"):
        return _NUMPY
    xp = x.__array_namespace__()
    if id(xp) not in _array_api:
        _array_api[id(xp)] = ArrayApiNamespace(xp)
    return _array_api[id(xp)]
