"""The ``torch.optim.Optimizer`` base shared by every ravine optimizer.

Collecting and validating happen here; computing happens in :mod:`.engines`, which run
the registry's rule. Everything torch.optim users rely on is inherited: param groups,
``add_param_group``, ``state_dict``/``load_state_dict``, hooks, ``zero_grad`` and the LR
schedulers (which only read and write ``param_groups[i]["lr"]``).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch

from ..rules import Spec
from ..rules import step as rule_step
from . import checkpoint, dtensor, engines
from . import fused as fused_kernels
from .fused import FusedEngine
from .state import LazyStates, TrackedState


class Optimizer(torch.optim.Optimizer):
    """Base class; each subclass sets :attr:`spec` (see :mod:`ravine.torch.optimizers`)."""

    spec: ClassVar[Spec]

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = None,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
        nonfinite: str = "ignore",
        reduce_group: Any = None,
        **hparams: Any,
    ) -> None:
        given = {**hparams, **({} if lr is None else {"lr": lr})}
        defaults: dict[str, Any] = self.spec.validate({**self.spec.defaults, **given})
        defaults.update(engines.check_implementation(self.spec.name, foreach, fused, reduce_group))
        if nonfinite not in NONFINITE_POLICIES:
            raise ValueError(
                f"{self.spec.name}: invalid nonfinite={nonfinite!r}; valid: "
                f"{', '.join(repr(p) for p in NONFINITE_POLICIES)}"
            )
        self.nonfinite = nonfinite
        """What a step does when a gradient holds NaN or ±Inf (see NONFINITE_POLICIES)."""
        self.skipped_steps = 0
        """Steps skipped under ``nonfinite="skip"``."""
        self._step_spec = _with_reduction(self.spec, reduce_group)
        self.reduce_group = reduce_group
        """The process group the cross-tensor reduction also sums over (None: this process)."""
        super().__init__(params, defaults)
        self.state: TrackedState = TrackedState(self.state)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its own hyperparameters are validated like the constructor's."""
        foreign = checkpoint.foreign_hyperparameters(self.spec, param_group)
        if foreign:  # torch.optim accepts any key; these would be ignored
            raise TypeError(
                f"{self.spec.name}: param group key(s) {foreign} are torch.optim's names or "
                f"another ravine optimizer's, which {self.spec.name} does not take; its "
                f"hyperparameters: {', '.join(self.spec.defaults)}"
            )
        overrides = {k: v for k, v in param_group.items() if k in self.spec.checks}
        param_group.update(self.spec.validate(overrides))
        engines.check_implementation(
            self.spec.name,
            param_group.get("foreach", self.defaults["foreach"]),
            param_group.get("fused", self.defaults["fused"]),
            self.reduce_group,
        )
        super().add_param_group(param_group)  # warns about duplicates, refuses overlaps
        group = self.param_groups[-1]
        for p in group["params"]:
            if not (p.is_floating_point() or p.is_complex()):
                self.param_groups.pop()
                raise TypeError(
                    f"{self.spec.name}: params must be floating-point or complex tensors, got "
                    f"a {p.dtype} tensor of shape {tuple(p.shape)}"
                )
        _deduplicate(group)

    def __getstate__(self) -> dict[str, Any]:  # pickle and deepcopy keep the policy
        return {
            **super().__getstate__(),
            "nonfinite": self.nonfinite,
            "skipped_steps": self.skipped_steps,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Checkpoints written before a hyperparameter existed load with its default.
        self.nonfinite = state.pop("nonfinite", getattr(self, "nonfinite", "ignore"))
        self.skipped_steps = state.pop("skipped_steps", getattr(self, "skipped_steps", 0))
        # a process group does not pickle: a copy reduces over its own process only
        self.__dict__.setdefault("_step_spec", self.spec)
        self.__dict__.setdefault("reduce_group", None)
        super().__setstate__(state)
        self.state = TrackedState(self.state)
        for group in self.param_groups:
            for name, value in self.spec.defaults.items():
                group.setdefault(name, value)
            group.setdefault("foreach", None)
            group.setdefault("fused", None)

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        # Schedulers and users may rewrite param_groups between steps: check every step.
        return self.spec.validate({name: group[name] for name in self.spec.defaults})

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's format with plain dicts (loads with ``weights_only=True``), plus a
        ``"ravine"`` entry naming the format version and the optimizer."""
        packed = super().state_dict()
        packed["state"] = {k: dict(v) for k, v in packed["state"].items()}
        packed["ravine"] = checkpoint.metadata(self)
        return packed

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state after checking that it fits (see :mod:`ravine.torch.checkpoint`);
        a state that does not fit raises ``CheckpointError`` and changes nothing."""
        checkpoint.check(self, state_dict)
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "ravine"})

    def _check_sparse(
        self, work: list[tuple[dict[str, Any], list[torch.Tensor], list[torch.Tensor]]]
    ) -> None:
        """Raise before any tensor changes if a sparse gradient cannot be honoured."""
        for i, (group, params, grads) in enumerate(work):
            for p, g in zip(params, grads, strict=True):
                if not g.is_sparse:
                    continue
                j = _position(group, p)
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
        checked = [self._hyperparameters(group) for group in self.param_groups]
        planned = self._planned(checked)
        work = []
        for i, group in enumerate(self.param_groups):
            if i in planned:
                continue  # every gradient is in place, dense and contiguous
            params, grads = group["params"], list(map(_grad, group["params"]))
            # skip parameters without a gradient (not `None in grads`: that runs tensor ==)
            if not all(map(_is_not_none, grads)):
                params = [p for p, g in zip(params, grads, strict=True) if g is not None]
                grads = [g for g in grads if g is not None]
            work.append((group, params, grads))
        if any(any(map(_is_sparse, grads)) for _, _, grads in work):
            self._check_sparse(work)
        if self.nonfinite != "ignore" and not self._all_finite(work):
            self.skipped_steps += 1  # "skip": nothing changes, in any group
            return loss
        for i, plan in planned.items():
            self._fused.run(plan, checked[i])
        unplanned = [hp for i, hp in enumerate(checked) if i not in planned]
        for (group, params, grads), hp in zip(work, unplanned, strict=True):
            if not params:
                continue
            states = LazyStates(self.state, params, lambda p, hp=hp: self._state(p, hp))
            engine = self._engine(group, params)
            spec = self._step_spec
            if self._kinds(params)[1]:  # DTensors (FSDP2, tensor parallel): see .dtensor
                dtensor.step(engine, spec, params, grads, states, hp, self._count_fallback)
            else:
                engine(spec, params, grads, states, hp)
        return loss

    def _planned(self, checked: list[dict[str, Any]]) -> dict[int, Any]:
        """Groups the fused engine can step from its cached plan, by index, with their plans:
        nothing about them changed and every parameter has a dense, contiguous gradient.

        Those steps need no Python per tensor (see :mod:`.walk`); checking comes first for
        all groups, so a group that fails a check still fails before anything changes.
        """
        engine: FusedEngine | None = getattr(self, "_fused", None)
        if engine is not None:
            self._forget_removed_groups(engine)
        version = getattr(self.state, "version", None)  # None: opt.state replaced by hand
        if engine is None or version is None or self.nonfinite != "ignore":
            return {}  # (a nonfinite policy reads every gradient anyway)
        planned = {}
        for i, (group, hp) in enumerate(zip(self.param_groups, checked, strict=True)):
            params = group["params"]
            if params and self._engine(group, params) is engine and not self._kinds(params)[1]:
                plan = engine.ready(self.spec, params, hp, version)
                if plan is not None:
                    planned[i] = plan
        return planned

    def _forget_removed_groups(self, engine: FusedEngine) -> None:
        """Drop the plans (and the tensors they hold) of parameters no group lists any more
        (``del opt.param_groups[i]``, a replaced or shortened ``params`` list); checked
        when the groups' lists change, which costs O(groups) per step."""
        layout = tuple((id(g["params"]), len(g["params"])) for g in self.param_groups)
        if layout != self.__dict__.get("_group_layout"):
            self._group_layout = layout
            engine.retain({id(p) for g in self.param_groups for p in g["params"]})

    def _all_finite(self, work: list[tuple[dict[str, Any], list[Any], list[Any]]]) -> bool:
        """Whether every gradient is finite; under "raise", name the first that is not."""
        for i, (group, params, grads) in enumerate(work):
            pairs = [
                (p, g.coalesce().values() if g.is_sparse else g)
                for p, g in zip(params, grads, strict=True)
            ]
            pairs = [(p, v) for p, v in pairs if v.numel()]
            if not pairs:
                continue
            # the largest |g| is finite exactly when every element is (a 2-norm could overflow)
            largest = torch._foreach_norm([v for _, v in pairs], ord=float("inf"))
            finite = torch.stack([m.float() for m in largest]).isfinite()
            if bool(finite.all()):
                continue
            if self.nonfinite == "raise":
                p, values = pairs[int((~finite).nonzero()[0])]
                j = _position(group, p)
                raise FloatingPointError(
                    f"{self.spec.name}: the gradient of param {j} of group {i} (shape "
                    f"{tuple(p.shape)}) holds {int((~values.isfinite()).sum())} NaN/Inf "
                    "value(s); nothing was changed. nonfinite='skip' skips such steps"
                )
            return False
        return True

    def _engine(self, group: dict[str, Any], params: list[torch.Tensor]) -> engines.Engine:
        """The implementation for this group: fused, batched (foreach) or per-tensor."""
        foreach, fused = group["foreach"], group["fused"]
        if self._step_spec is not self.spec:  # a cross-process reduction: not in a kernel
            # (again here: a group's fused may be rewritten after construction)
            engines.check_implementation(self.spec.name, foreach, fused, self.reduce_group)
            return engines.ENGINES[_resolve_foreach(foreach, params)]
        on_cpu = self._all_on_cpu(params) if fused or (fused is None and foreach is None) else False
        if fused or (fused is None and foreach is None and on_cpu):
            if not on_cpu:
                raise RuntimeError(
                    f"{self.spec.name}: fused=True runs on CPU tensors only; got "
                    f"{sorted({p.device.type for p in params})}; use foreach=True instead"
                )
            engine = self._fused_engine(required=bool(fused))
            if engine is not None:
                return engine
        return engines.ENGINES[_resolve_foreach(foreach, params)]

    def _all_on_cpu(self, params: list[torch.Tensor]) -> bool:
        return self._kinds(params)[0]

    def _kinds(self, params: list[torch.Tensor]) -> tuple[bool, bool]:
        """(all on the CPU, any a DTensor) for a parameter list.

        ``p.device`` costs ~0.5 µs, so the answer is remembered for the last few lists. A
        stale answer only picks a slower path, never a wrong one: the fused engine checks
        every tensor's device and kind when it plans, and the DTensor route handles plain
        tensors too.
        """
        key = (id(params), len(params), id(params[0]), id(params[-1]))
        cache: dict[tuple[int, ...], tuple[bool, bool]] = self.__dict__.setdefault(
            "_kinds_cache", {}
        )
        if key not in cache:
            if len(cache) > 8:
                cache.clear()
            cache[key] = (
                all(p.device.type == "cpu" for p in params),
                dtensor.any_dtensor(params),
            )
        return cache[key]

    def _fused_engine(self, required: bool) -> FusedEngine | None:
        engine: FusedEngine | None = getattr(self, "_fused", None)
        if engine is None:
            if not fused_kernels.available():
                message = "no C compiler with OpenMP could be run (set CC, or install gcc)"
                if required:
                    raise RuntimeError(f"{self.spec.name}: fused=True: {message}")
                if not self.__dict__.get("_warned_unavailable"):  # once per optimizer, even
                    self._warned_unavailable = True  # under warnings.simplefilter("always")
                    fused_kernels.warn_unavailable(message)
                return None
            engine = self._fused = FusedEngine()
        return engine

    def _count_fallback(self, n: int) -> None:
        engine = getattr(self, "_fused", None)
        if engine is not None:
            engine.fallbacks += n

    @property
    def fallbacks(self) -> int:
        """Tensor-steps the fused implementation handed to the per-tensor one (layouts it
        cannot stream: sparse, non-contiguous, mixed dtypes; DTensors of rules with group
        scalars, see :mod:`.dtensor`)."""
        engine = getattr(self, "_fused", None)
        return engine.fallbacks if engine is not None else 0

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


def _position(group: dict[str, Any], p: torch.Tensor) -> int:
    """Index of ``p`` in its group, for error messages (by identity, not tensor ==)."""
    return next(i for i, q in enumerate(group["params"]) if q is p)


def _deduplicate(group: dict[str, Any]) -> None:
    """Keep each parameter once (torch.optim warns, then would step a repeated one twice)."""
    first = {id(p): i for i, p in reversed(list(enumerate(group["params"])))}
    keep = sorted(first.values())
    if len(keep) != len(group["params"]):
        group["params"] = [group["params"][i] for i in keep]
        if "param_names" in group:
            group["param_names"] = [group["param_names"][i] for i in keep]


def _with_reduction(spec: Spec, group: Any) -> Spec:
    """``spec`` whose cross-tensor reduction also sums over ``group``'s processes."""
    if group is None:
        return spec
    if spec.group_scalars is None:
        raise ValueError(
            f"{spec.name}: reduce_group={group!r} has nothing to reduce; only optimizers that "
            "reduce across tensors take it (NormalizedGD)"
        )
    import torch.distributed as dist

    def all_reduce(total: torch.Tensor) -> torch.Tensor:
        total = total.clone()
        dist.all_reduce(total, group=group)
        return total

    return dataclasses.replace(
        spec, group_scalars=functools.partial(spec.group_scalars, reduce=all_reduce)
    )


_grad = operator.attrgetter("grad")
_is_not_none = functools.partial(operator.is_not, None)
_is_sparse = operator.attrgetter("is_sparse")


NONFINITE_POLICIES = ("ignore", "skip", "raise")
"""``ignore``: apply the rule whatever the gradients hold (torch.optim's behaviour);
``skip``: a step whose gradients hold any NaN/Inf changes no parameter, no state and no step
count, in any group, and is counted in ``skipped_steps``; ``raise``: FloatingPointError
naming the parameter, before anything changes."""


def _resolve_foreach(foreach: bool | None, params: list[torch.Tensor]) -> bool:
    """None: batched on accelerators, where kernel launches dominate; per-tensor on the CPU,
    where the batched kernels measured slower (as torch.optim's default does)."""
    if foreach is None:
        return all(p.device.type != "cpu" for p in params)
    return foreach
