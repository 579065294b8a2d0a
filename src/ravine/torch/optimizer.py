"""The ``torch.optim.Optimizer`` base shared by every ravine optimizer.

Collecting and validating happen here; computing happens in :mod:`.engines`, which run
the registry's rule. Everything torch.optim users rely on is inherited: param groups,
``add_param_group``, ``state_dict``/``load_state_dict``, hooks, ``zero_grad`` and the LR
schedulers (which only read and write ``param_groups[i]["lr"]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch

from ..rules import Spec
from ..rules import step as rule_step
from . import engines

_NOT_HYPERPARAMETERS = frozenset({"params", "foreach", "param_names"})


class Optimizer(torch.optim.Optimizer):
    """Base class; each subclass sets :attr:`spec` (see :mod:`ravine.torch.optimizers`)."""

    spec: ClassVar[Spec]

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = None,
        *,
        foreach: bool | None = None,
        **hparams: Any,
    ) -> None:
        given = {**hparams, **({} if lr is None else {"lr": lr})}
        defaults: dict[str, Any] = self.spec.validate({**self.spec.defaults, **given})
        defaults["foreach"] = _check_foreach(self.spec.name, foreach)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its own hyperparameters are validated like the constructor's."""
        overrides = {k: v for k, v in param_group.items() if k in self.spec.checks}
        param_group.update(self.spec.validate(overrides))
        if "foreach" in param_group:
            _check_foreach(self.spec.name, param_group["foreach"])
        super().add_param_group(param_group)
        for p in self.param_groups[-1]["params"]:
            if not (p.is_floating_point() or p.is_complex()):
                self.param_groups.pop()
                raise TypeError(
                    f"{self.spec.name}: params must be floating-point or complex tensors, got "
                    f"a {p.dtype} tensor of shape {tuple(p.shape)}"
                )

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Checkpoints written before a hyperparameter existed load with its default.
        super().__setstate__(state)
        for group in self.param_groups:
            for name, value in self.spec.defaults.items():
                group.setdefault(name, value)
            group.setdefault("foreach", None)

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        # Schedulers and users may rewrite param_groups between steps: check every step.
        return self.spec.validate({name: group[name] for name in self.spec.defaults})

    def _check_sparse(self) -> None:
        """Raise before any tensor changes if a sparse gradient cannot be honoured."""
        for i, group in enumerate(self.param_groups):
            for j, p in enumerate(group["params"]):
                if p.grad is None or not p.grad.is_sparse:
                    continue
                if not self.spec.sparse:
                    raise RuntimeError(
                        f"{self.spec.name} does not support sparse gradients (param {j} of "
                        f"group {i}, shape {tuple(p.shape)}); SGD and Adagrad do, or use "
                        "nn.Embedding(sparse=False)"
                    )
                if group["weight_decay"] != 0:
                    raise RuntimeError(
                        f"{self.spec.name}: weight_decay={group['weight_decay']} is not "
                        f"supported with sparse gradients (param {j} of group {i}); valid: 0"
                    )

    def _state(self, p: torch.Tensor, hp: dict[str, Any]) -> dict[str, Any]:
        state = self.state[p]
        if not state:  # lazily, on the parameter's first step
            state.update(engines.init_state(self.spec, p, hp))
        return state

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One step for every parameter with a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_sparse()
        checked = [self._hyperparameters(group) for group in self.param_groups]
        for group, hp in zip(self.param_groups, checked, strict=True):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self._state(p, hp) for p in params]
            engine = engines.ENGINES[_resolve_foreach(group["foreach"], params)]
            engine(self.spec, params, [p.grad for p in params], states, hp)
        return loss

    def theta(self, param: torch.Tensor) -> torch.Tensor:
        """The seed's θ for ``param``, as a new tensor.

        Equal to the parameter except for look-ahead rules (NAG), whose parameters hold
        the look-ahead point between steps: evaluate and export θ, not the parameters.
        """
        state = self.state.get(param)
        view = engines.real_view(param.detach())
        if not state or self.spec.offset is None:
            return param.detach().clone()
        value = rule_step.theta(self.spec, view, engines.rule_state(self.spec, state))
        return torch.view_as_complex(value) if param.is_complex() else value

    @contextmanager
    def swap_to_theta(self) -> Iterator[None]:
        """Within the block, parameters hold θ (for evaluation); restored exactly after.

        A no-op for rules without a look-ahead.
        """
        saved: list[tuple[torch.Tensor, torch.Tensor]] = []
        if self.spec.offset is not None:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        if self.state.get(p):
                            saved.append((p, p.detach().clone()))
                            p.copy_(self.theta(p))
        try:
            yield
        finally:
            with torch.no_grad():
                for p, stored in saved:
                    p.copy_(stored)


def _check_foreach(owner: str, foreach: Any) -> bool | None:
    if foreach is not None and not isinstance(foreach, bool):
        raise TypeError(f"{owner}: foreach must be True, False or None, got {foreach!r}")
    return foreach


def _resolve_foreach(foreach: bool | None, params: list[torch.Tensor]) -> bool:
    """None: batched on accelerators, where kernel launches dominate; per-tensor on the CPU,
    where the batched kernels measured slower (as torch.optim's default does)."""
    if foreach is None:
        return all(p.device.type != "cpu" for p in params)
    return foreach
