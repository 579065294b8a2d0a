"""The per-tensor engine: the rule applied tensor by tensor (the reference implementation).

It calls :func:`ravine.rules.step.update`, the one place that applies sign, weight decay,
look-ahead and learning rate, on each parameter's compute views (:mod:`..storage`).

Sparse gradients (rules whose spec says ``sparse``) run the rule on the gathered rows that
have a gradient and scatter the result back: for those rules a row without gradient keeps
its value and state, so this equals the dense step exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...rules import Hyperparameters, Spec
from ...rules import step as rule_step
from .. import storage
from ..storage import State, compute_view, real_view


def step(
    spec: Spec,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[State],
    hp: Hyperparameters,
) -> None:
    """One step of ``params``, tensor by tensor."""
    dense = [
        (real_view(p), s, compute_view(p), compute_view(g))
        for p, g, s in zip(params, grads, states, strict=True)
        if not g.is_sparse
    ]
    for p, g, s in zip(params, grads, states, strict=True):
        if g.is_sparse:
            _step_sparse(spec, p, g, s, hp)
    gs = [rule_step.effective_gradient(p, g, hp) for _, _, p, g in dense]
    scalars = spec.group_scalars(gs) if spec.group_scalars and gs else {}
    for (p, state, p_compute, _), g in zip(dense, gs, strict=True):
        t = storage.next_step(state)
        p_new, new = rule_step.update(
            spec,
            p_compute,
            g,
            storage.load(spec, [state], dtype=p_compute.dtype),
            t=t,
            hp=hp,
            scalars=scalars,
        )
        p.copy_(p_new)
        storage.save(spec, [state], new, t)


def _step_sparse(
    spec: Spec, p: torch.Tensor, g: torch.Tensor, state: State, hp: Hyperparameters
) -> None:
    g = g.coalesce()
    rows = tuple(g._indices())
    p_rows = compute_view(p[rows])
    values = rule_step.effective_gradient(p_rows, compute_view(g._values()), hp)
    row_state = storage.load(spec, [state], lambda views: views[0][rows], p_rows.dtype)
    t = storage.next_step(state)
    p_rows, new = rule_step.update(spec, p_rows, values, row_state, t=t, hp=hp, scalars={})
    p.index_put_(rows, p_rows.to(p.dtype))

    def scatter(targets: list[torch.Tensor], value: torch.Tensor) -> None:
        targets[0].index_put_(rows, value.to(targets[0].dtype))

    storage.save(spec, [state], new, t, write=scatter)
