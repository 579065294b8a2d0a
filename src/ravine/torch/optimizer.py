"""The ``torch.optim.Optimizer`` base shared by every ravine optimizer.

Collecting and validating happen here; what a step checks first is in :mod:`.guards`;
computing happens in :mod:`.engines`, which run the registry's rule and read and write its
state through :mod:`.storage`. Everything torch.optim users rely on is inherited: param groups,
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

from .. import quantization
from ..rules import Spec
from ..rules import step as rule_step
from . import checkpoint, engines, guards, storage
from .engines import dtensor, triton_fused
from .state import LazyStates, TrackedState


class Optimizer(torch.optim.Optimizer):
    """Base class; each subclass sets :attr:`spec` (see :mod:`ravine.torch.optimizers`)."""

    spec: ClassVar[Spec]

    _step_supports_amp_scaling: ClassVar[bool] = True
    """``torch.amp.GradScaler.step`` hands its device-side ``grad_scale`` and ``found_inf``
    to :meth:`step` (as attributes) instead of unscaling and reading ``found_inf`` itself:
    the Triton engine unscales in its kernels and skips on the device, without a
    synchronisation; the other engines unscale the gradients in place first."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = None,
        *,
        foreach: bool | None = None,
        fused: bool | str | None = None,
        capturable: bool = False,
        state_dtype: Any = None,
        min_compact_size: int = quantization.MIN_ELEMENTS,
        nonfinite: str = "ignore",
        reduce_group: Any = None,
        **hparams: Any,
    ) -> None:
        given = {**hparams, **({} if lr is None else {"lr": lr})}
        defaults: dict[str, Any] = self.spec.validate({**self.spec.defaults, **given})
        defaults.update(engines.check_implementation(self.spec.name, foreach, fused, reduce_group))
        defaults["capturable"] = engines.check_capturable(self.spec.name, capturable, fused)
        defaults["state_dtype"] = storage.check_state_dtype(self.spec.name, state_dtype)
        defaults["min_compact_size"] = storage.check_min_compact_size(
            self.spec.name, min_compact_size
        )
        self.nonfinite = guards.check_nonfinite(self.spec.name, nonfinite)
        """What a step does when a gradient holds NaN or ±Inf (see
        :data:`~.guards.NONFINITE_POLICIES`)."""
        self.skipped_steps = 0
        self._step_spec = _with_reduction(self.spec, reduce_group)
        self.reduce_group = reduce_group
        """The process group the cross-tensor reduction also sums over (None: this process)."""
        self._engines = engines.Selector(self.spec, reduce_group)
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
        engines.check_capturable(
            self.spec.name,
            param_group.get("capturable", self.defaults["capturable"]),
            param_group.get("fused", self.defaults["fused"]),
        )
        if "state_dtype" in param_group:
            storage.check_state_dtype(self.spec.name, param_group["state_dtype"])
        if "min_compact_size" in param_group:
            storage.check_min_compact_size(self.spec.name, param_group["min_compact_size"])
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
        # load_state_dict comes here too: the engines (kernels, fallback count) stay
        self.__dict__.setdefault("_engines", engines.Selector(self.spec, self.reduce_group))
        super().__setstate__(state)
        self.state = TrackedState(self.state)
        for group in self.param_groups:
            for name, value in self.spec.defaults.items():
                group.setdefault(name, value)
            group.setdefault("foreach", None)
            group.setdefault("fused", None)
            group.setdefault("capturable", False)
            group.setdefault("state_dtype", None)
            group.setdefault("min_compact_size", quantization.MIN_ELEMENTS)
            for p in group["params"]:  # after load_state_dict: into the group's format
                if p in self.state and any(map(_is_held, self.state[p].values())):
                    held = {k: _unheld(v) for k, v in self.state[p].items()}
                    seed = storage.rounding_seed(self._position(p))
                    self.state[p] = storage.convert(self.spec, held, p, *_storage(group), seed)

    @property
    def skipped_steps(self) -> int:
        """Steps skipped under ``nonfinite="skip"``. The Triton engine counts them on the
        device: reading this waits for the steps queued so far."""
        triton = self._triton()
        return self._skipped_steps + (triton.skipped() if triton is not None else 0)

    @skipped_steps.setter
    def skipped_steps(self, value: int) -> None:
        self._skipped_steps = int(value)
        triton = self._triton()
        if triton is not None:
            triton.reset_skipped()

    def _triton(self) -> engines.TritonEngine | None:
        selector = self.__dict__.get("_engines")
        return selector.triton if selector is not None else None

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        # Schedulers and users may rewrite param_groups between steps: check every step.
        return self.spec.validate({name: group[name] for name in self.spec.defaults})

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's format with plain dicts (loads with ``weights_only=True``), plus a
        ``"ravine"`` entry naming the format version and the optimizer."""
        packed = super().state_dict()
        packed["state"] = {k: _numbers(self.spec, v) for k, v in packed["state"].items()}
        packed["ravine"] = checkpoint.metadata(self)
        return packed

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state after checking that it fits (see :mod:`ravine.torch.checkpoint`);
        a state that does not fit raises ``CheckpointError`` and changes nothing."""
        checkpoint.check(self, state_dict)
        for group in self.param_groups:  # what __setstate__ could not convert, refused now
            kind = group["state_dtype"]
            wrapped = [p for p in group["params"] if storage.is_wrapper(p)]
            if wrapped and kind is not None and kind is not torch.float32:
                raise checkpoint.CheckpointError(
                    f"{self.spec.name}: state_dtype={kind!r} is not supported for "
                    f"{type(wrapped[0]).__name__} parameters (FSDP2, tensor parallel); "
                    "valid there: None, torch.float32"
                )
        # The state keeps its own format until __setstate__ converts it to the group's
        # state_dtype (torch would cast every floating-point state to the parameter's
        # dtype first); state_dtype is this optimizer's, not the saved one.
        groups = [
            {**saved, "state_dtype": group["state_dtype"], "min_compact_size": _storage(group)[1]}
            for saved, group in zip(state_dict["param_groups"], self.param_groups, strict=True)
        ]
        state = {
            index: {k: _held(k, v) for k, v in entry.items()}
            for index, entry in state_dict["state"].items()
        }
        super().load_state_dict({"state": state, "param_groups": groups})

    def _state(self, p: torch.Tensor, hp: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
        state = self.state[p]
        if not state:  # lazily, on the parameter's first step
            seed = storage.rounding_seed(self._position(p))
            state.update(storage.init(self.spec, p, hp, *_storage(group), seed))
        return state

    def _position(self, p: torch.Tensor) -> int:
        """``p``'s index in the optimizer, counting through the groups (cached; groups only
        grow, so a miss rebuilds the table)."""
        table = self.__dict__.get("_positions")
        if table is None or id(p) not in table:
            params = [q for group in self.param_groups for q in group["params"]]
            table = self.__dict__["_positions"] = {id(q): i for i, q in enumerate(params)}
        return table[id(p)]

    def state_formats(self) -> dict[str, str]:
        """The storage format of each parameter's state, by name (``param_names`` where the
        groups have them, else ``"group.index"``): ``"float32"``, ``"bfloat16-sr"``,
        ``"8bit"``, … — the format a state has, or will have on its first step. Under a
        compact ``state_dtype``, parameters under ``min_compact_size`` elements show their
        full-precision format here. Rules without array state (SGD, NormalizedGD) list none."""
        formats = {}
        for i, group in enumerate(self.param_groups):
            names = group.get("param_names") or [f"{i}.{j}" for j in range(len(group["params"]))]
            for name, p in zip(names, group["params"], strict=True):
                state = self.state.get(p)
                kept = storage.format_of(self.spec, state) if state else None
                if storage.arrays(self.spec):
                    formats[name] = kept or storage.state_format(p, *_storage(group))
        return formats

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One step for every parameter with a gradient; returns the closure's loss."""
        triton = self._triton()
        if triton is not None:  # "raise" on the device: the previous step's finding
            try:
                triton.raise_pending(self.spec.name)
            except FloatingPointError:
                for name in ("grad_scale", "found_inf"):  # GradScaler.step cannot clear them
                    self.__dict__.pop(name, None)
                raise
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad_scale = getattr(self, "grad_scale", None)  # set by GradScaler.step
        found_inf = getattr(self, "found_inf", None)
        scaling = grad_scale is not None or found_inf is not None
        checked = [self._hyperparameters(group) for group in self.param_groups]
        planned = self._planned(checked, scaling)
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
            guards.check_sparse(self.spec, work, self.state)
        self._check_capturable(work)
        on_device = self._on_device(work) if self.nonfinite != "ignore" or scaling else None
        if on_device is not None:  # checked, skipped and unscaled on the device
            flags = guards.nonfinite_flags(work) if self.nonfinite != "ignore" else {}
            places = dict.fromkeys(p.device for _, params, _ in work for p in params)
            on_device.begin(flags, found_inf, grad_scale, list(places))
            try:
                self._run(planned, checked, work)
            finally:
                capturing = torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()
                on_device.end(
                    count=self.nonfinite != "ignore",
                    defer_raise=self.nonfinite == "raise" and not capturing,
                )
            return loss
        if found_inf is not None and bool(found_inf):  # as GradScaler skips other optimizers
            return loss
        if self.nonfinite != "ignore" and not guards.all_finite(self.spec, self.nonfinite, work):
            self._skipped_steps += 1  # "skip": nothing changes, in any group
            return loss
        if grad_scale is not None:  # unscaled in place, as GradScaler.unscale_ would
            for _, _, grads in work:
                for g in grads:
                    g.div_(grad_scale.to(g.device))
        self._run(planned, checked, work)
        return loss

    def _run(
        self, planned: dict[int, Any], checked: list[dict[str, Any]], work: guards.Work
    ) -> None:
        """Each group's step, by its engine."""
        for i, plan in planned.items():
            assert self._engines.fused is not None  # it made the plan
            self._engines.fused.run(plan, checked[i])
        unplanned = [hp for i, hp in enumerate(checked) if i not in planned]
        for slot, ((group, params, grads), hp) in enumerate(zip(work, unplanned, strict=True)):
            if not params:
                continue
            states = LazyStates(
                self.state,
                params,
                lambda p, hp=hp, group=group: self._state(p, hp, group),
            )
            engine = self._engines.engine(group, params)
            if isinstance(engine, engines.TritonEngine):
                engine.capturable, engine.slot = group["capturable"], slot
            spec = self._step_spec
            try:
                if self._engines.devices(params).dtensor:  # FSDP2, TP: see .dtensor
                    dtensor.step(
                        engine, spec, params, grads, states, hp, self._engines.count_fallback
                    )
                else:
                    engine(spec, params, grads, states, hp)
            finally:
                if isinstance(engine, engines.TritonEngine):
                    engine.capturable = False

    def _check_capturable(self, work: guards.Work) -> None:
        """Refuse, before anything changes, a ``capturable=True`` group that the Triton
        kernels would not step whole."""
        for group, params, grads in work:
            if not (group["capturable"] and params):
                continue
            if self._triton_for(group, params) is None:
                raise RuntimeError(
                    f"{self.spec.name}: capturable=True runs on the Triton engine (CUDA, or "
                    f"CPU under TRITON_INTERPRET=1); this group's parameters are on "
                    f"{sorted(self._engines.devices(params).types)}; nothing was changed; "
                    "valid there: capturable=False"
                )
            states = [self.state.get(p) for p in params]
            formats = [
                None if state else storage.state_format(p, *_storage(group))
                for p, state in zip(params, states, strict=True)
            ]
            triton_fused.check_capturable(self._step_spec, params, grads, states, formats)

    def _on_device(self, work: guards.Work) -> engines.TritonEngine | None:
        """The Triton engine if it steps every group that has gradients (then a check,
        skip or GradScaler's scale can stay on the device), else None."""
        triton = None
        for group, params, _ in work:
            if params:
                triton = self._triton_for(group, params)
                if triton is None:
                    return None
        return triton

    def _triton_for(
        self, group: dict[str, Any], params: list[torch.Tensor]
    ) -> engines.TritonEngine | None:
        """The Triton engine if it steps this group's plain tensors whole (not DTensors,
        which go shard by shard through :mod:`.engines.dtensor`), else None."""
        engine = self._engines.engine(group, params)
        if isinstance(engine, engines.TritonEngine) and not self._engines.devices(params).dtensor:
            return engine
        return None

    def _planned(self, checked: list[dict[str, Any]], scaling: bool = False) -> dict[int, Any]:
        """Groups the fused engine can step from its cached plan (see
        :meth:`.engines.Selector.planned`); none under a nonfinite policy, which reads every
        gradient anyway, or under a GradScaler (``scaling``), which unscales them first."""
        version = getattr(self.state, "version", None)  # None: opt.state replaced by hand
        if self.nonfinite != "ignore" or scaling:
            version = None
        return self._engines.planned(self.param_groups, checked, version)

    @property
    def fallbacks(self) -> int:
        """Tensor-steps the fused implementation handed to the per-tensor one (layouts it
        cannot stream: sparse, non-contiguous, mixed dtypes; DTensors of rules with group
        scalars, see :mod:`.engines.dtensor`)."""
        return self._engines.fallbacks

    def theta(self, param: torch.Tensor) -> torch.Tensor:
        """The seed's θ for ``param``, as a new tensor.

        Equal to the parameter except for look-ahead rules (NAG), whose parameters hold
        the look-ahead point between steps: evaluate and export θ, not the parameters.
        """
        state = self.state.get(param)
        view = storage.real_view(param.detach())
        if not state or self.spec.offset is None:
            return param.detach().clone()
        loaded = storage.load(self.spec, [state], dtype=storage.compute_view(view).dtype)
        value = rule_step.theta(self.spec, view, loaded)
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


def _numbers(spec: Spec, entry: dict[str, Any]) -> dict[str, Any]:
    """A parameter's saved state with its scalar state as numbers, as every engine but
    the Triton one keeps it (that one keeps them on the device; the step count stays a
    tensor there, as torch.optim's fused optimizers save it)."""
    return {
        k: v.item() if k in spec.scalar_state and isinstance(v, torch.Tensor) else v
        for k, v in entry.items()
    }


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


def _storage(group: dict[str, Any]) -> tuple[Any, int]:
    """A group's ``state_dtype`` and ``min_compact_size`` (see :func:`.storage.state_format`)."""
    return group["state_dtype"], group.get("min_compact_size", quantization.MIN_ELEMENTS)


class _Held:
    """A loaded state tensor kept out of torch's load_state_dict, which would cast it to its
    parameter's dtype (an 8-bit code would survive, its float32 absmax would not)."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


def _held(key: str, value: Any) -> Any:
    # the step too: for a fused group torch would cast it to float32 (inexact past 2**24)
    return _Held(value) if isinstance(value, torch.Tensor) else value


def _is_held(value: Any) -> bool:
    return isinstance(value, _Held)


def _unheld(value: Any) -> Any:
    return value.tensor if isinstance(value, _Held) else value


_grad = operator.attrgetter("grad")
_is_not_none = functools.partial(operator.is_not, None)
_is_sparse = operator.attrgetter("is_sparse")
