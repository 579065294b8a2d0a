"""Property test over step *sequences*: whatever a training loop does between steps —
gradients that come and go, lr changes, state saved and reloaded, groups added, options
toggled — the three implementations stay in agreement, parameters and state."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ravine.torch as rt
from conftest import IMPLEMENTATIONS, rel_err
from ravine.rules import SPECS

pytestmark = pytest.mark.usefixtures("walker")  # each test under both walks

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("step"), st.lists(st.booleans(), min_size=3, max_size=3)),
        st.tuples(st.just("lr"), st.floats(1e-3, 0.2)),
        st.tuples(st.just("reload"), st.none()),
        st.tuples(st.just("add_group"), st.none()),
        st.tuples(st.just("maximize"), st.booleans()),
    ),
    min_size=1,
    max_size=12,
)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, seed=st.integers(0, 1000))
def test_implementations_agree_over_any_sequence(spec, ops, seed):
    gen = torch.Generator().manual_seed(seed)
    start = [torch.randn(s, generator=gen, dtype=torch.float64) for s in ((3, 2), (4,), (2, 2))]
    extra = torch.randn(5, generator=gen, dtype=torch.float64)
    runs = []
    for impl in IMPLEMENTATIONS.values():
        params = [p.clone().requires_grad_() for p in start]
        runs.append((params, rt.OPTIMIZERS[spec.name](params, lr=0.05, **impl), [extra.clone()]))
    for t, (op, arg) in enumerate(ops):
        grads = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in start]
        extra_grad = torch.randn(5, generator=gen, dtype=torch.float64)
        for params, opt, pending in runs:
            if op == "step":
                for p, g, has in zip(params, grads, arg, strict=True):
                    p.grad = g.clone() if has else None
                for group in opt.param_groups[1:]:
                    group["params"][0].grad = extra_grad.clone()
                opt.step()
            elif op == "lr":
                for group in opt.param_groups:
                    group["lr"] = arg
            elif op == "reload":
                opt.load_state_dict(copy.deepcopy(opt.state_dict()))
            elif op == "add_group" and pending:
                opt.add_param_group({"params": [pending.pop().requires_grad_()], "lr": 0.01})
            elif op == "maximize":
                for group in opt.param_groups:
                    group["maximize"] = arg
        _, reference, _ = runs[0]
        for _, opt, _ in runs[1:]:
            for a, b in zip(
                [p for g in opt.param_groups for p in g["params"]],
                [p for g in reference.param_groups for p in g["params"]],
                strict=True,
            ):
                assert rel_err(opt.theta(a), reference.theta(b)) <= 1e-12, (t, op)
                for key, value in reference.state[b].items():
                    other = opt.state[a][key]
                    if isinstance(value, torch.Tensor):
                        assert rel_err(other, value) <= 1e-12, (t, op, key)
                    else:
                        assert other == pytest.approx(value, rel=1e-12), (t, op, key)
