"""The fused engine's per-step walk (ravine.torch.walk): the C++ module and its Python twin
answer alike in every case, and the fast step from a cached plan is taken exactly when
nothing about the group changed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ravine.torch as rt
from conftest import TOLERANCE, rel_err
from ravine.torch import walk


@pytest.fixture(scope="module")
def native():
    assert walk.wait(timeout=300), walk.status()
    return walk.current()


def _tensors(n=70, dtype=torch.float32):
    params = tuple(torch.randn(3, 4, dtype=dtype).requires_grad_() for _ in range(n))
    for p in params:
        p.grad = torch.randn_like(p)
    table = np.zeros((3, n), dtype=np.int64)
    table[0] = [p.data_ptr() for p in params]
    return params, table


def _damage(kind, params):
    """One change that must make refresh answer False (or None: refresh stays True)."""
    p = params[len(params) // 2]
    if kind == "no gradient":
        p.grad = None
    elif kind == "sparse gradient":
        p.grad = p.grad.to_sparse()
    elif kind == "strided gradient":
        p.grad = torch.randn(4, 6, dtype=p.dtype)[:, ::2].t()[:3]
        assert not p.grad.is_contiguous()
    elif kind == "storage replaced":
        p.data = p.data.clone()
    elif kind == "new gradient tensor":
        p.grad = p.grad.clone()  # fine: refreshed, not refused
        return True
    return False


KINDS = ["no gradient", "sparse gradient", "strided gradient", "storage replaced"]


@pytest.mark.parametrize("kind", [*KINDS, "new gradient tensor"])
@pytest.mark.parametrize("given", [False, True], ids=["own .grad", "grads given"])
def test_refresh_answers_alike(native, kind, given):
    answers = []
    for ops in (native, walk.PYTHON):
        params, table = _tensors()
        assert ops.refresh(params, None, table)
        assert list(table[1]) == [p.grad.data_ptr() for p in params]
        expected = _damage(kind, params)
        if given and kind == "no gradient":
            continue  # the general path never passes a missing gradient
        grads = [p.grad for p in params] if given else None
        answer = ops.refresh(params, grads, table)
        assert answer is expected, (ops, kind)
        if answer:
            assert list(table[1]) == [p.grad.data_ptr() for p in params]
        answers.append(answer)
    assert len(set(answers)) <= 1


def test_refresh_refuses_a_lazily_conjugated_gradient(native):
    for ops in (native, walk.PYTHON):
        params = (torch.randn(3, dtype=torch.complex64).requires_grad_(),)
        params[0].grad = torch.randn(3, dtype=torch.complex64).conj()
        table = np.array([[params[0].data_ptr()], [0]], dtype=np.int64)
        assert ops.refresh(params, None, table) is False


def test_refresh_checks_its_arguments(native):
    params, table = _tensors(4)
    with pytest.raises(ValueError, match="differ in length"):
        native.refresh(params, [p.grad for p in params[:3]], table)
    with pytest.raises(ValueError, match="fewer than 2 rows"):
        native.refresh(params, None, table[0].copy())
    for operation in (native.agree, native.put):
        with pytest.raises(ValueError, match="keys and values differ in length"):
            operation(({"step": 1},), ("step",), (1, 2))


def test_same_agree_and_put_answer_alike(native):
    items = [object() for _ in range(5)]
    for ops in (native, walk.PYTHON):
        assert ops.same(items, tuple(items)) and ops.same(tuple(items), tuple(items))
        assert not ops.same(items[:-1], tuple(items))
        assert not ops.same([*items[:-1], object()], tuple(items))
        states = tuple({"step": 3, "mu": 0.5} for _ in range(5))
        assert ops.agree(states, ("step", "mu"), (3, 0.5)) and ops.agree(states, ("step",), (3,))
        assert ops.agree(states, ("step",), (3.0,))  # compared with ==, as the twin does
        states[2]["mu"] = 0.25
        assert not ops.agree(states, ("step", "mu"), (3, 0.5))
        assert not ops.agree(states, ("missing",), (None,))
        ops.put(states, ("step", "mu"), (4, 0.125))
        assert all(s == {"step": 4, "mu": 0.125} for s in states)


def test_put_is_not_reported_as_a_change(native):
    params = [torch.zeros(2, requires_grad=True)]
    opt = rt.Adam(params, lr=0.1)
    params[0].grad = torch.ones(2)
    opt.step()
    before = opt.state.version
    for ops in (native, walk.PYTHON):
        ops.put((opt.state[params[0]],), ("step",), (7,))
    assert opt.state.version == before and opt.state[params[0]]["step"] == 7


def _ready(opt):
    checked = [opt._hyperparameters(g) for g in opt.param_groups]
    return sorted(opt._planned(checked))


@pytest.mark.usefixtures("walker")
@pytest.mark.parametrize("kind", KINDS)
def test_the_planned_step_is_taken_only_while_nothing_changed(kind):
    """Two steps plan the group; from then on it steps from the plan; each change sends
    that step down the general path, whose result equals the per-tensor implementation."""
    name = "Adagrad" if kind == "sparse gradient" else "Adam"  # Adam refuses sparse
    params, _ = _tensors(n=70, dtype=torch.float64)
    twins = [p.detach().clone().requires_grad_() for p in params]
    opt = rt.OPTIMIZERS[name](params, lr=0.05, fused=True)
    ref = rt.OPTIMIZERS[name](twins, lr=0.05, foreach=False)
    for step in range(4):
        for p in params:
            p.grad = torch.randn_like(p)
        if step == 3:
            _damage(kind, params)
            assert _ready(opt) == []
        else:
            assert _ready(opt) == ([0] if step else [])
        for p, q in zip(params, twins, strict=True):
            q.grad = None if p.grad is None else p.grad.clone()
        opt.step()
        ref.step()
    for p, q in zip(params, twins, strict=True):
        assert rel_err(p, q) <= TOLERANCE[torch.float64]
        assert opt.state[p]["step"] == ref.state[q]["step"]
        for field, value in ref.state[q].items():
            if isinstance(value, torch.Tensor):
                assert rel_err(opt.state[p][field], value) <= TOLERANCE[torch.float64]


def test_status_names_the_implementation_in_use(native):
    assert walk.status() == "c++"


_BACKGROUND = """
import torch, ravine.torch as rt
from ravine.torch import walk
params = [torch.zeros(3, requires_grad=True) for _ in range(100)]
opt = rt.SGD(params, lr=0.5, fused=True)
for p in params:
    p.grad = torch.ones(3)
opt.step()
print("after the first step:", walk.status())
print("waited:", walk.wait(300), walk.status())
opt.step()
print("value:", float(params[0][0]))
"""


def _run_script(cache, **env):
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _BACKGROUND],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAVINE_CACHE_DIR": str(cache), **env},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_walk_builds_in_the_background_once_and_is_cached(tmp_path):
    """A step never waits for the C++ build (the first step of a fresh machine runs on the
    Python twin while it builds); a later process loads it from the cache, unchanged."""
    first = _run_script(tmp_path)
    assert "after the first step: python (the C++ walker is being built)" in first
    assert "waited: True c++" in first and "value: -1.0" in first
    (module,) = (tmp_path / "modules").glob("_ravine_walk-*")
    stamp = module.stat().st_mtime_ns
    second = _run_script(tmp_path)
    assert "waited: True c++" in second and "value: -1.0" in second
    assert [m.stat().st_mtime_ns for m in (tmp_path / "modules").glob("_ravine_walk-*")] == [stamp]


def test_the_walk_can_be_kept_in_python(tmp_path):
    out = _run_script(tmp_path, RAVINE_WALK="python")
    assert "waited: False python (RAVINE_WALK=python)" in out and "value: -1.0" in out
    assert not (tmp_path / "modules").exists()
