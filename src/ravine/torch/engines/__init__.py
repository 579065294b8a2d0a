"""Engines: the ways one param group's step is computed, all running the same rule.

Every engine has one signature, ``engine(spec, params, grads, states, hp)``, and reads and
writes state through :mod:`ravine.torch.storage`. They are known by name:

=============  ===========================================================================
``per_tensor`` the rule tensor by tensor (:mod:`.per_tensor`; the reference)
``foreach``    the rule on batches of tensors, one ``torch._foreach_*`` call per operation
               (:mod:`.foreach`)
``cpu_fused``  the traced rule compiled to C, one pass over all tensors (:mod:`.cpu_fused`)
``triton``     the traced rule as Triton kernels, one launch per batch (:mod:`.triton_fused`)
=============  ===========================================================================

:func:`choose` maps the user's ``foreach=``/``fused=`` flags and the tensors' devices to a
name; :class:`Selector` holds one optimizer's engines (the fused engine's kernels and
plans), answers which one steps a group, and counts fallbacks. DTensor parameters are
stepped shard by shard around the chosen engine (:mod:`.dtensor`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch

from ...rules import Spec
from ..storage import State
from . import cpu_fused, dtensor, foreach, per_tensor, triton_fused
from .cpu_fused import FusedEngine
from .triton_fused import TritonEngine

Engine = Callable[
    [Spec, Sequence[torch.Tensor], Sequence[torch.Tensor], Sequence[State], Mapping[str, Any]], None
]

ENGINES: Mapping[str, Engine] = {"per_tensor": per_tensor.step, "foreach": foreach.step}
"""The engines that keep nothing between steps, by name (``cpu_fused`` and ``triton`` keep
kernels and plans or tables: one :class:`~.cpu_fused.FusedEngine` and one
:class:`~.triton_fused.TritonEngine` per optimizer, held by its :class:`Selector`)."""


def check_implementation(
    owner: str, foreach: Any, fused: Any, reduce_group: Any = None
) -> dict[str, bool | str | None]:
    """The ``foreach``/``fused`` choice, checked where it is made (constructor,
    ``add_param_group``) and where it is loaded (a checkpoint's groups). ``fused="triton"``
    forces the Triton engine on any device."""
    if foreach is not None and not isinstance(foreach, bool):
        raise TypeError(f"{owner}: foreach must be True, False or None, got {foreach!r}")
    if not (fused is None or isinstance(fused, bool) or fused == "triton"):
        raise TypeError(f"{owner}: fused must be True, False, None or 'triton', got {fused!r}")
    if foreach and fused:
        raise ValueError(
            f"{owner}: foreach=True and fused={fused!r} exclude each other; choose one"
        )
    if fused and reduce_group is not None:  # a cross-process sum cannot run inside a kernel
        raise ValueError(
            f"{owner}: fused={fused!r} cannot take reduce_group={reduce_group!r}; use "
            "foreach=True or leave both None"
        )
    return {"foreach": foreach, "fused": fused}


def check_capturable(owner: str, capturable: Any, fused: Any) -> bool:
    """``capturable=True`` (a step a CUDA graph can capture: step counts, hyperparameters
    and the skip flag stay on the device) needs the Triton engine, chosen by ``fused``."""
    if not isinstance(capturable, bool):
        raise TypeError(f"{owner}: capturable must be True or False, got {capturable!r}")
    if capturable and fused not in (True, "triton"):
        raise ValueError(
            f"{owner}: capturable=True needs the Triton engine, which keeps the step on the "
            f"device; got fused={fused!r}; valid: fused=True (on CUDA) or fused='triton'"
        )
    return capturable


class Devices(NamedTuple):
    """Where a parameter list lives."""

    types: frozenset[str]
    """The device types (``"cpu"``, ``"cuda"``, …)."""
    dtensor: bool
    """Whether any parameter is a DTensor."""

    @property
    def cpu(self) -> bool:
        """All on the CPU."""
        return self.types == {"cpu"}

    @property
    def accelerator(self) -> bool:
        """None on the CPU."""
        return "cpu" not in self.types


def devices(params: Sequence[torch.Tensor]) -> Devices:
    return Devices(frozenset(p.device.type for p in params), dtensor.any_dtensor(params))


def choose(
    owner: str, foreach: bool | None, fused: bool | str | None, where: Devices, reduces: bool
) -> str:
    """The engine's name for a group.

    * ``fused="triton"``: ``triton`` on any device where it can run (CUDA; the CPU only
      under ``TRITON_INTERPRET=1``), else it raises;
    * ``fused=True``, or both flags None on the CPU: ``cpu_fused`` on the CPU; ``fused=True``
      on CUDA: ``triton`` (elsewhere it raises);
    * ``foreach=True``, or both None on accelerators (where kernel launches dominate):
      ``foreach`` (also on CUDA: Triton becomes the default there once measured faster);
    * otherwise ``per_tensor`` (on the CPU the batched kernels measured slower, as
      torch.optim's default also finds).

    ``reduces``: a cross-process reduction, which no kernel can run inside; never fused.
    """
    if not reduces and fused == "triton":
        problem = triton_fused.placement_problem(where.types)
        if problem is not None:
            raise RuntimeError(
                f"{owner}: fused='triton' cannot step tensors on {sorted(where.types)}: "
                f"{problem}; use fused=True or foreach=True instead"
            )
        return "triton"
    if not reduces and (fused or (fused is None and foreach is None and where.cpu)):
        if where.types == {"cuda"}:
            return "triton"
        if not where.cpu:
            raise RuntimeError(
                f"{owner}: fused=True runs on tensors all on the CPU (C kernels) or all on "
                f"CUDA (Triton); got {sorted(where.types)}; use foreach=True instead"
            )
        return "cpu_fused"
    if foreach is None:
        foreach = where.accelerator
    return "foreach" if foreach else "per_tensor"


class Selector:
    """One optimizer's engines: which one steps a group, the fused engine's state (kernels,
    plans), and how many tensor-steps fell back to the per-tensor engine."""

    def __init__(self, spec: Spec, reduce_group: Any = None) -> None:
        self.spec, self.owner, self.reduce_group = spec, spec.name, reduce_group
        self.fused: FusedEngine | None = None
        """Created on first use (only if a C compiler works)."""
        self.triton: TritonEngine | None = None
        """Created on first use (only if Triton imports)."""
        self._devices: dict[tuple[int, ...], Devices] = {}
        self._warned_unavailable = False
        self._warned_triton = False
        self._group_layout: tuple[tuple[int, int], ...] = ()

    def devices(self, params: list[torch.Tensor]) -> Devices:
        """:func:`devices`, remembered for the last few lists.

        ``p.device`` costs ~0.5 µs. A stale answer only picks a slower path, never a wrong
        one: the fused engine checks every tensor's device and kind when it plans, and the
        DTensor route handles plain tensors too.
        """
        key = (id(params), len(params), id(params[0]), id(params[-1]))
        if key not in self._devices:
            if len(self._devices) > 8:
                self._devices.clear()
            self._devices[key] = devices(params)
        return self._devices[key]

    def engine(self, group: Mapping[str, Any], params: list[torch.Tensor]) -> Engine:
        """The engine for this group's step (see :func:`choose`)."""
        foreach, fused = group["foreach"], group["fused"]
        reduces = self.reduce_group is not None
        if reduces:  # again here: a group's fused may be rewritten after construction
            check_implementation(self.owner, foreach, fused, self.reduce_group)
        where = self.devices(params)
        name = choose(self.owner, foreach, fused, where, reduces)
        if name == "cpu_fused":
            engine = self._fused_engine(required=bool(fused))
            if engine is not None:
                return engine
            name = choose(self.owner, foreach, False, where, reduces)
        elif name == "triton":
            instead = choose(self.owner, foreach, False, where, reduces)
            triton = self._triton_engine(required=fused == "triton", instead=instead)
            if triton is not None:
                return triton
            name = instead
        return ENGINES[name]

    def planned(
        self,
        groups: list[dict[str, Any]],
        checked: list[dict[str, Any]],
        version: int | None,
    ) -> dict[int, Any]:
        """Groups the fused engine can step from its cached plan, by index, with their
        plans: nothing about them changed and every parameter has a dense, contiguous
        gradient. Those steps need no Python per tensor (see :mod:`.walk`); checking comes
        first for all groups, so a group that fails a check still fails before anything
        changes. ``version``: the state store's change counter (None: unknown)."""
        engine = self.fused
        if engine is None:
            return {}
        self._forget_removed_groups(groups, engine)
        if version is None:
            return {}
        planned = {}
        for i, (group, hp) in enumerate(zip(groups, checked, strict=True)):
            params = group["params"]
            if params and self.engine(group, params) is engine and not self.devices(params).dtensor:
                plan = engine.ready(self.spec, params, hp, version)
                if plan is not None:
                    planned[i] = plan
        return planned

    def _forget_removed_groups(self, groups: list[dict[str, Any]], engine: FusedEngine) -> None:
        """Drop the plans (and the tensors they hold) of parameters no group lists any more
        (``del opt.param_groups[i]``, a replaced or shortened ``params`` list); checked
        when the groups' lists change, which costs O(groups) per step."""
        layout = tuple((id(g["params"]), len(g["params"])) for g in groups)
        if layout != self._group_layout:
            self._group_layout = layout
            engine.retain({id(p) for g in groups for p in g["params"]})

    def _fused_engine(self, required: bool) -> FusedEngine | None:
        if self.fused is None:
            if not cpu_fused.available():
                message = "no C compiler with OpenMP could be run (set CC, or install gcc)"
                if required:
                    raise RuntimeError(f"{self.owner}: fused=True: {message}")
                if not self._warned_unavailable:  # once per optimizer, even
                    self._warned_unavailable = True  # under warnings.simplefilter("always")
                    cpu_fused.warn_unavailable(message)
                return None
            self.fused = FusedEngine()
        return self.fused

    def _triton_engine(self, required: bool, instead: str) -> TritonEngine | None:
        if self.triton is None:
            problem = triton_fused.import_problem()
            if problem is not None:
                if required:
                    raise RuntimeError(f"{self.owner}: fused='triton': {problem}")
                if not self._warned_triton:  # once per optimizer
                    self._warned_triton = True
                    triton_fused.warn_unavailable(problem, instead)
                return None
            self.triton = TritonEngine()
        return self.triton

    def count_fallback(self, n: int) -> None:
        """``n`` tensor-steps of DTensors that ran on the per-tensor engine instead of the
        chosen one (counted in the fused engine there is, as before the Triton engine)."""
        engine = self.fused or self.triton
        if engine is not None:
            engine.fallbacks += n

    @property
    def fallbacks(self) -> int:
        """Tensor-steps the fused engines handed to the per-tensor one."""
        return sum(e.fallbacks for e in (self.fused, self.triton) if e is not None)
