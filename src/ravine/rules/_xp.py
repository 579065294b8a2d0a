"""Array namespaces: the few operations a rule needs beyond arithmetic operators.

A rule is written once against ``xp = namespace(x)`` and runs unchanged on

* NumPy arrays (the reference, and the lab's engine),
* torch tensors (the per-tensor torch implementation),
* :class:`TensorList`, a list of tensors whose operators are torch's ``_foreach_*``
  kernels (the multi-tensor implementation).

Operators (``+ - * /``, unary ``-``, ``**`` on scalars) come from the arrays themselves;
``namespace(x)`` adds ``sqrt``, ``sum_squares`` and ``floor``. Scalars (Python numbers,
0-d tensors) may stand on either side of an operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any, Protocol

import numpy as np

Array = Any  # numpy.ndarray, torch.Tensor, TensorList, or a scalar
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


class TensorList:
    """A list of same-dtype tensors; arithmetic runs one ``torch._foreach_*`` call per op.

    This is how the multi-tensor implementation runs the *same* rule function as the
    per-tensor one: the rule sees ``m * beta + g * (1 - beta)`` and each operator becomes
    one batched kernel launch over all tensors.
    """

    __slots__ = ("tensors",)
    __array_priority__ = 1000  # so numpy scalars on the left defer to our reflected ops

    def __init__(self, tensors: Sequence[Any]) -> None:
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def _operand(self, other: Any) -> Any:
        if isinstance(other, TensorList):
            return other.tensors
        if isinstance(other, Real):
            return float(other)
        return other  # a 0-d tensor, broadcast to every list element

    def _apply(self, name: str, other: Any) -> TensorList:
        import torch

        return TensorList(getattr(torch, f"_foreach_{name}")(self.tensors, self._operand(other)))

    def __add__(self, other: Any) -> TensorList:
        return self._apply("add", other)

    __radd__ = __add__

    def __sub__(self, other: Any) -> TensorList:
        return self._apply("sub", other)

    def __rsub__(self, other: Any) -> TensorList:
        return (-self) + other

    def __mul__(self, other: Any) -> TensorList:
        return self._apply("mul", other)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> TensorList:
        return self._apply("div", other)

    def __rtruediv__(self, other: Any) -> TensorList:
        import torch

        return TensorList(torch._foreach_reciprocal(self.tensors)) * other

    def __neg__(self) -> TensorList:
        import torch

        return TensorList(torch._foreach_neg(self.tensors))


class _TensorListNamespace:
    def sqrt(self, x: Array) -> Array:
        import torch

        return TensorList(torch._foreach_sqrt(x.tensors))

    def sum_squares(self, x: Array) -> Array:
        import torch

        if not x.tensors:
            return torch.zeros(())
        norms = torch._foreach_norm([t if t.element_size() >= 4 else t.float() for t in x.tensors])
        return torch.stack(norms).square().sum()

    def floor(self, x: Array, low: float) -> Array:
        import torch

        return TensorList(torch._foreach_maximum(x.tensors, low))

    def zeros_like(self, x: Array) -> Array:
        return TensorList([_torch_ns().zeros_like(t) for t in x.tensors])

    def full_like(self, x: Array, value: float) -> Array:
        return TensorList([_torch_ns().full_like(t, value) for t in x.tensors])


_NUMPY = _NumpyNamespace()
_TENSOR_LIST = _TensorListNamespace()
_torch_namespace: _TorchNamespace | None = None


def _torch_ns() -> _TorchNamespace:
    global _torch_namespace
    if _torch_namespace is None:  # torch is optional: import it only once a tensor shows up
        import torch

        _torch_namespace = _TorchNamespace(torch)
    return _torch_namespace


def namespace(x: Array) -> Namespace:
    """The namespace of ``x``: NumPy for arrays and Python numbers, torch for tensors.

    A type may bring its own namespace as an ``_xp`` attribute (the fast path's tracer does).
    """
    if hasattr(type(x), "_xp"):
        return x._xp
    if isinstance(x, TensorList):
        return _TENSOR_LIST
    if type(x).__module__.startswith("torch"):
        return _torch_ns()
    return _NUMPY
