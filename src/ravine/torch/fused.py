"""The fused implementation: the traced rule, compiled, over every tensor of a batch at once.

``FusedEngine`` has the engines' signature. Per batch (same dtype and step) it gathers the
data pointers of parameters, gradients and state into one table and makes one call into a
generated C kernel (:mod:`ravine.fused`), which streams through memory once, in place,
on all threads — no per-step temporaries, no per-tensor Python arithmetic.

Tensors the kernel cannot take (sparse gradients, non-contiguous layouts, a gradient of
another dtype, non-CPU devices, wrapper subclasses such as DTensor) go through the
per-tensor implementation instead, and are counted in :attr:`FusedEngine.fallbacks`.
Scalars (bias corrections, μ-products) are evaluated from the same traced rule in Python,
in double precision.

A group's tables are cached as a *plan* and checked every step (same parameters, still in
place, gradients streamable, step counts aligned) by :mod:`.walk`, in C++ once it is
built: :meth:`FusedEngine.ready` lets the optimizer step an unchanged group without any
Python per tensor.
"""

from __future__ import annotations

import ctypes
import sys
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..fused import build, codegen, trace
from ..rules import Spec
from . import engines, walk

_STORAGE = {
    torch.float64: "float64",
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
}
PARALLEL_MIN_ELEMENTS = 1 << 15
"""Below this many elements a step runs on one thread (thread wake-up costs more)."""

_Kernel = tuple[Any, Any]  # (ravine_update, ravine_reduce or None)


def available() -> bool:
    """Whether kernels can be compiled here (a C compiler with OpenMP works)."""
    try:
        build.compiler()
    except build.CompilerUnavailableError:
        return False
    return True


def _bind(library: ctypes.CDLL, reduces: bool) -> _Kernel:
    common: list[Any] = [
        ctypes.c_int64,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int64,
    ]
    update = library.ravine_update
    update.argtypes, update.restype = common, None
    if not reduces:
        return update, None
    reduce = library.ravine_reduce
    reduce.argtypes, reduce.restype = [*common, ctypes.c_void_p], None
    return update, reduce


def _pointer(array: np.ndarray) -> int:
    return int(array.ctypes.data)


@dataclass
class _Batch:
    """Tensors of one dtype and step, streamed by one kernel call."""

    members: list[int]
    kernel: _Kernel
    offsets: np.ndarray
    pointers: np.ndarray
    """int64 [stream, tensor]: row 0 parameters, row 1 gradients, then array state."""
    threads: int
    params: tuple[torch.Tensor, ...] = ()
    states: tuple[engines.State, ...] = ()
    """The members' state dicts (their step counts must still agree to share a call)."""
    fields: tuple[str, ...] = ()
    """The state tensors streamed (table rows 2…)."""

    def __post_init__(self) -> None:
        self.addresses = (_pointer(self.offsets), _pointer(self.pointers))
        # 0-element tensors of the planned dtypes, for the per-step checks (see .walk)
        param = self.params[0] if self.params else torch.empty(0)
        self.param_type = torch.empty(0, dtype=param.dtype)
        self.storage_type = torch.empty(0, dtype=engines.real_view(param).dtype)

    def ready(self, grads: Sequence[torch.Tensor] | None) -> bool:
        """Whether every member still matches the plan (gradient addresses refreshed)."""
        return bool(
            walk.current().refresh(
                self.params,
                grads,
                self.states,
                self.fields,
                self.pointers,
                self.offsets,
                self.param_type,
                self.storage_type,
            )
        )


@dataclass
class _Plan:
    """What a group's step needs, cached while the group's tensors stay the same."""

    params: tuple[torch.Tensor, ...]
    version: int | None
    """The state store's change counter when planned (None: unknown, check everything)."""
    states: list[engines.State]
    program_key: tuple[Any, ...]
    program: trace.Program | None
    eager: list[int]
    batches: list[_Batch]


class FusedEngine:
    """Runs the compiled rule; one instance per optimizer keeps its programs and kernels."""

    def __init__(self) -> None:
        self._programs: dict[tuple[Any, ...], trace.Program] = {}
        self._kernels: dict[tuple[Any, ...], _Kernel] = {}
        self._plans: dict[int, _Plan] = {}
        self.fallbacks = 0
        """Tensor-steps that went through the per-tensor implementation instead."""

    def _program(self, key: tuple[Any, ...], spec: Spec, hp: Mapping[str, Any]) -> trace.Program:
        if key not in self._programs:
            self._programs[key] = trace.trace(spec, hp)
        return self._programs[key]

    def _kernel(self, program: trace.Program, key: tuple[Any, ...], storage: str) -> _Kernel:
        if (key, storage) not in self._kernels:
            library = build.load(codegen.generate(program, storage))
            self._kernels[(key, storage)] = _bind(library, bool(program.reductions))
        return self._kernels[(key, storage)]

    def __call__(
        self,
        spec: Spec,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor],
        states: Sequence[engines.State],
        hp: Mapping[str, Any],
    ) -> None:
        plan, program_key = self._cached(spec, params, hp)
        version = getattr(states, "version", None)  # None: not a TrackedState, plan anew
        if plan is None or not _still_valid(plan, program_key, version, params, grads):
            plan = self._plan(spec, hp, program_key, params, grads, list(states))
            plan.version = getattr(states, "version", None)  # after any state was created
            self._plans[id(params[0])] = plan  # one plan per group, keyed by its first param
        states = plan.states
        if plan.eager:
            self.fallbacks += len(plan.eager)
            engines.per_tensor(
                spec,
                [params[i] for i in plan.eager],
                [grads[i] for i in plan.eager],
                [states[i] for i in plan.eager],
                hp,
            )
        self.run(plan, hp)

    def ready(
        self, spec: Spec, params: Sequence[torch.Tensor], hp: Mapping[str, Any], version: int
    ) -> _Plan | None:
        """The cached plan for a group's whole parameter list, if it still holds with every
        parameter's own ``.grad`` streamable (gradient addresses refreshed); else None.

        This is the common step — every parameter has its gradient, nothing changed — and
        it costs no Python per tensor once the C++ walker is built (see :mod:`.walk`).
        """
        plan, program_key = self._cached(spec, params, hp)
        if plan is None or plan.eager:
            return None
        return plan if _still_valid(plan, program_key, version, params, None) else None

    def _cached(
        self, spec: Spec, params: Sequence[torch.Tensor], hp: Mapping[str, Any]
    ) -> tuple[_Plan | None, tuple[Any, ...]]:
        """The plan cached for this parameter list (one per group, keyed by its first
        parameter), if any, and the program key it must match."""
        plan = self._plans.get(id(params[0])) if params else None
        return plan, (trace.static_key(spec, hp), spec.scalar_state)

    def retain(self, live: set[int]) -> None:
        """Keep only the plans whose parameters are all among ``live`` (ids): a plan holds
        its tensors, so a removed group's would otherwise stay in memory. (The ids are safe
        to compare: while a plan holds a parameter, no other tensor can take its id.)"""
        self._plans = {
            key: plan
            for key, plan in self._plans.items()
            if all(id(p) in live for p in plan.params)
        }

    def run(self, plan: _Plan, hp: Mapping[str, Any]) -> None:
        """Step the plan's batches (after :meth:`ready`, or within :meth:`__call__`)."""
        if plan.program is not None and plan.batches:
            self._run(plan.program, plan.batches, hp, plan.program_key[1])

    def _plan(
        self,
        spec: Spec,
        hp: Mapping[str, Any],
        program_key: tuple[Any, ...],
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor],
        states: Sequence[engines.State],
    ) -> _Plan:
        scalar_state = program_key[1]
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        eager: list[int] = []
        for i, (p, g, s) in enumerate(zip(params, grads, states, strict=True)):
            if _fits(p, g, s, spec):
                dtype = engines.real_view(p).dtype
                groups[(dtype, *(s[f] for f in ("step", *scalar_state)))].append(i)
            else:
                eager.append(i)
        program = self._program(program_key, spec, hp) if groups else None
        kernels: dict[torch.dtype, _Kernel] = {}
        for batch_key in list(groups):
            dtype = batch_key[0]
            try:
                if dtype not in kernels:
                    assert program is not None
                    kernels[dtype] = self._kernel(program, program_key, _STORAGE[dtype])
            except build.CompilerUnavailableError as error:
                warn_unavailable(f"{dtype}: {error}")
                eager += groups.pop(batch_key)
        if eager and spec.group_scalars is not None:
            # the group norm must span every tensor: run the whole group one way
            eager, groups = list(range(len(params))), {}
        batches = [
            _Batch(
                members,
                kernels[key[0]],
                *_tables(program, params, grads, states, members),
                tuple(params[i] for i in members),
                tuple(states[i] for i in members),
                program.arrays[2:],
            )
            for key, members in groups.items()
            if program is not None
        ]
        if len(params) >= walk.MIN_TENSORS:
            walk.start()  # many tensors: build the C++ walker (once, in the background)
        return _Plan(
            params=tuple(params),
            version=None,
            states=list(states),
            program_key=program_key,
            program=program,
            eager=sorted(eager),
            batches=batches,
        )

    def _run(
        self,
        program: trace.Program,
        batches: list[_Batch],
        hp: Mapping[str, Any],
        scalar_state: tuple[str, ...],
    ) -> None:
        env: dict[str, float] = {n: float(hp[n]) for n in program.scalar_inputs if n in hp}
        if program.reductions:
            totals = np.zeros(len(program.reductions))
            reduction_scalars = program.evaluator("reduction")
            for batch in batches:
                env.update(_batch_env(batch.states[0], scalar_state))
                scalars = np.array(reduction_scalars(env), dtype=np.float64)
                partial = np.zeros((batch.threads, len(program.reductions)))
                _, reduce = batch.kernel
                reduce(*_arguments(batch, scalars), _pointer(partial))
                totals += partial.sum(axis=0)
            for node, total in zip(program.reductions, totals, strict=True):
                env[f"reduction:{id(node)}"] = float(total)

        put = walk.current().put
        outputs = ("step", *program.scalar_outputs)
        update_scalars = program.evaluator("update")
        count = len(program.kernel_scalars())
        for batch in batches:
            first = batch.states[0]
            env.update(_batch_env(first, scalar_state))
            values = update_scalars(env)  # the kernel's scalars, then the new scalar state
            update, _ = batch.kernel
            update(*_arguments(batch, np.array(values[:count], dtype=np.float64)))
            put(batch.states, outputs, (first["step"] + 1, *values[count:]))


def _arguments(batch: _Batch, scalars: np.ndarray) -> tuple[int, int, int, int, int]:
    return (len(batch.members), *batch.addresses, _pointer(scalars), batch.threads)


def _batch_env(state: engines.State, scalar_state: tuple[str, ...]) -> dict[str, float]:
    return {"t": float(state["step"] + 1), **{f: float(state[f]) for f in scalar_state}}


def _tables(
    program: trace.Program,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[engines.State],
    members: list[int],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Element offsets and the pointer table (one row per stream) of a batch."""
    sizes = [engines.real_view(params[i]).numel() for i in members]
    offsets = np.zeros(len(members) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    rows = [
        [params[i].data_ptr() for i in members],
        [grads[i].data_ptr() for i in members],
        *([states[i][f].data_ptr() for i in members] for f in program.arrays[2:]),
    ]
    pointers = np.array(rows, dtype=np.int64)
    threads = torch.get_num_threads() if int(offsets[-1]) >= PARALLEL_MIN_ELEMENTS else 1
    return offsets, pointers, threads


def _still_valid(
    plan: _Plan,
    program_key: tuple[Any, ...],
    version: int | None,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor] | None,
) -> bool:
    """Cheap per-step checks that the cached tables still describe the group's tensors;
    on success the gradient rows are refreshed (autograd may allocate new gradients every
    step). ``grads`` None: each parameter's own ``.grad``."""
    if plan.program_key != program_key:
        return False
    if version is None or version != plan.version:
        return False  # the state was changed from outside (load_state_dict, by hand)
    ops = walk.current()
    if not ops.same(params, plan.params):
        return False
    keys = ("step", *program_key[1])
    for batch in plan.batches:
        # t (and NAdam's μ-product, NAG's shift) must still agree across the batch: another
        # plan, or another implementation, may have stepped only some of its members
        first = batch.states[0]
        if not ops.agree(batch.states, keys, tuple(first.get(k) for k in keys)):
            return False
        gs = grads
        if grads is not None and len(batch.members) != len(grads):
            gs = [grads[i] for i in batch.members]
        if not batch.ready(gs):
            return False
    return True


def _fits(p: torch.Tensor, g: torch.Tensor, state: engines.State, spec: Spec) -> bool:
    """Whether the kernel can stream this parameter: it, its gradient and its state tensors
    hold exactly their values in plain CPU memory (:func:`.walk.plain`, the predicate the
    per-step walk applies too), the gradient has the parameter's shape and dtype, the state
    the parameter's size and storage dtype. (A wrapper such as DTensor reports
    ``data_ptr() == 0``, which the kernel would write through: the optimizer passes
    DTensors' local shards instead.)"""
    view = engines.real_view(p)  # complex parameters stream as pairs of reals
    if view.dtype not in _STORAGE or g.shape != p.shape:  # p.grad.data = … skips torch's check
        return False
    if not (walk.plain((p,), p.dtype) and walk.plain((g,), p.dtype)):
        return False
    arrays = [state[name] for name in spec.state_fields if name not in spec.scalar_state]
    return (
        all(isinstance(value, torch.Tensor) for value in arrays)
        and walk.plain(arrays, view.dtype)
        and all(value.numel() == view.numel() for value in arrays)
    )


def warn_unavailable(reason: str) -> None:
    warnings.warn(
        f"ravine: fused kernels unavailable ({reason}); using the per-tensor implementation",
        RuntimeWarning,
        stacklevel=_outside_level(),
    )


def _outside_level() -> int:
    """The ``stacklevel`` that points a warning raised by this module's caller at the first
    frame outside ravine and torch (the user's ``opt.step()``, however deep the wrappers)."""
    frame, level = sys._getframe(2), 2  # 1: warn_unavailable, 2: its caller
    while frame.f_back is not None and frame.f_globals.get("__name__", "").partition(".")[0] in (
        "ravine",
        "torch",
    ):
        frame, level = frame.f_back, level + 1
    return level
