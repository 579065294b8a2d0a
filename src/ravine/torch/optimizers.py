"""The nine optimizers as ``torch.optim.Optimizer`` classes, generated from the registry."""

from __future__ import annotations

from .. import _doc, quantization
from ..rules import registry
from ..rules.registry import Spec
from .optimizer import Optimizer

_INTRO = (
    "A drop-in ``torch.optim.Optimizer``: ``opt = {name}(model.parameters(), lr=…)``, then "
    "``loss.backward(); opt.step()``. Implementations, all running the same rule: "
    "``fused=True`` compiles it into one in-place pass over all tensors (C on the CPU, "
    "Triton on CUDA; ``fused='triton'`` forces Triton); "
    "``foreach=True`` runs it on batches of tensors with ``torch._foreach_*``; "
    "``foreach=False`` tensor by tensor. The default (both None) is fused on the CPU when a "
    "C compiler is present, else batched on accelerators and per-tensor on the CPU. "
    "With Triton, steps never wait for the device (``nonfinite`` checks, GradScaler) and "
    "``capturable=True`` steps can be captured in a CUDA graph (docs/speed.md). "
    "``state_dtype`` stores the state compactly: ``torch.bfloat16`` (stochastic rounding) "
    "or ``'8bit'`` (block-wise), for parameters of at least ``min_compact_size`` elements "
    "(docs/state.md)."
)


def _optimizer_class(spec: Spec) -> type[Optimizer]:
    cls = type(spec.name, (Optimizer,), {"spec": spec, "__module__": "ravine.torch"})
    cls.__doc__ = _doc.class_doc(spec, _INTRO.format(name=spec.name))
    extra: dict[str, object] = {
        "foreach": None,
        "fused": None,
        "capturable": False,
        "state_dtype": None,
        "min_compact_size": quantization.MIN_ELEMENTS,
        "nonfinite": "ignore",
    }
    if spec.group_scalars is not None:
        extra["reduce_group"] = None
    cls.__signature__ = _doc.signature(spec, ("params",), extra)  # type: ignore[attr-defined]
    return cls


SGD = _optimizer_class(registry.SGD)
Momentum = _optimizer_class(registry.MOMENTUM)
NAG = _optimizer_class(registry.NAG)
NormalizedGD = _optimizer_class(registry.NORMALIZED_GD)
Adagrad = _optimizer_class(registry.ADAGRAD)
RMSProp = _optimizer_class(registry.RMSPROP)
AdaDelta = _optimizer_class(registry.ADADELTA)
Adam = _optimizer_class(registry.ADAM)
NAdam = _optimizer_class(registry.NADAM)

OPTIMIZERS: dict[str, type[Optimizer]] = {
    c.spec.name: c
    for c in (SGD, Momentum, NAG, NormalizedGD, Adagrad, RMSProp, AdaDelta, Adam, NAdam)
}
"""Every torch optimizer class by registry name."""
