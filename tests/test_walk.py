"""The fused engine's per-step walk (ravine.torch.engines.walk): the C++ module and its Python twin
answer alike in every case, and the fast step from a cached plan is taken exactly when
nothing about the group changed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ravine.torch as rt
from conftest import TOLERANCE, rel_err
from ravine.torch.engines import walk


@pytest.fixture(scope="module")
def native():
    assert walk.wait(timeout=300), walk.status()
    return walk.current()


class _Batch:
    """A planned batch as the fused engine holds it: parameters with gradients, their state
    (one tensor field "m"), the pointer table and offsets, the planned dtypes."""

    def __init__(self, n=70, dtype=torch.float32, shape=(3, 4)):
        self.params = tuple(torch.randn(shape, dtype=dtype).requires_grad_() for _ in range(n))
        real = torch.view_as_real if dtype.is_complex else (lambda x: x)
        for p in self.params:
            p.grad = torch.randn_like(p)
        self.states = tuple({"step": 1, "m": torch.zeros_like(real(p))} for p in self.params)
        self.table = np.zeros((3, n), dtype=np.int64)
        self.table[0] = [p.data_ptr() for p in self.params]
        self.table[2] = [s["m"].data_ptr() for s in self.states]
        sizes = [real(p).numel() for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.types = (torch.empty(0, dtype=dtype), torch.empty(0, dtype=real(self.params[0]).dtype))

    def refresh(self, ops, grads=None):
        return ops.refresh(
            self.params, grads, self.states, ("m",), self.table, self.offsets, *self.types
        )


def _damage(kind, batch):
    """One change to the middle member; True if refresh must still accept it."""
    p = batch.params[len(batch.params) // 2]
    state = batch.states[len(batch.params) // 2]
    if kind == "no gradient":
        p.grad = None
    elif kind == "sparse gradient":
        p.grad = p.grad.to_sparse()
    elif kind == "strided gradient":
        p.grad = torch.randn(4, 6, dtype=p.dtype)[:, ::2].t()[:3]
        assert not p.grad.is_contiguous()
    elif kind == "storage replaced":
        p.data = p.data.clone()
    elif kind == "transposed in place":  # same address, other layout (p.data = p.data.t())
        p.data = p.data.t()
    elif kind == "smaller at the same address":  # as malloc may hand the block back
        p.data = p.data.flatten()[:10]
        p.grad = torch.randn(10, dtype=p.dtype)  # as the next backward gives: only the size
        # check can refuse it (the kernel would write the planned 12 elements into 10)
    elif kind == "gradient of another shape":
        p.grad.data = torch.randn(10)
    elif kind == "gradient of another dtype":
        p.grad.data = p.grad.data.half()
    elif kind == "negated gradient view":  # a real tensor with torch's lazy negative bit
        p.grad.data = torch._neg_view(torch.randn(p.shape))
        assert p.grad.is_neg() and p.grad.is_contiguous()
    elif kind == "state tensor replaced":  # .data = … is no dict write: the version stays
        state["m"].data = torch.zeros_like(state["m"])
    elif kind == "state missing":
        del state["m"]
    elif kind == "new gradient tensor":
        p.grad = p.grad.clone()  # fine: refreshed, not refused
        return True
    return False


KINDS = [
    "no gradient",
    "sparse gradient",
    "strided gradient",
    "storage replaced",
    "transposed in place",
    "smaller at the same address",
    "gradient of another shape",
    "gradient of another dtype",
    "negated gradient view",
    "state tensor replaced",
    "state missing",
]


@pytest.mark.parametrize("kind", [*KINDS, "new gradient tensor"])
@pytest.mark.parametrize("given", [False, True], ids=["own .grad", "grads given"])
def test_refresh_answers_alike(native, kind, given):
    for ops in (native, walk.PYTHON):
        batch = _Batch()
        assert batch.refresh(ops)
        assert list(batch.table[1]) == [p.grad.data_ptr() for p in batch.params]
        expected = _damage(kind, batch)
        if given and kind == "no gradient":
            continue  # the general path never passes a missing gradient
        grads = [p.grad for p in batch.params] if given else None
        answer = batch.refresh(ops, grads)
        assert answer is expected, (ops, kind)
        if answer:
            assert list(batch.table[1]) == [p.grad.data_ptr() for p in batch.params]


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.complex64])
def test_refresh_accepts_every_planned_dtype_and_empty_tensors(native, dtype):
    """Regression: an empty gradient has no address; the C++ walk refused it, so a group
    with a zero-element parameter re-planned on every step (20 ms per step at 2000)."""
    for ops in (native, walk.PYTHON):
        for shape in ((3, 4), (0,)):
            batch = _Batch(n=5, dtype=dtype, shape=shape)
            assert batch.refresh(ops), (ops, dtype, shape)


def test_refresh_refuses_a_lazily_conjugated_gradient(native):
    for ops in (native, walk.PYTHON):
        batch = _Batch(n=3, dtype=torch.complex64)
        batch.params[1].grad = torch.randn(3, 4, dtype=torch.complex64).conj()
        assert batch.refresh(ops) is False


def test_refresh_refuses_a_wrapper_gradient(native):
    from torch.testing._internal.two_tensor import TwoTensor

    for ops in (native, walk.PYTHON):
        batch = _Batch(n=3)
        g = torch.randn(3, 4)
        batch.params[1].grad = TwoTensor(g, g.clone())
        assert batch.params[1].grad.data_ptr() == 0  # the kernel would write through it
        assert batch.refresh(ops) is False


def test_refresh_checks_its_arguments(native):
    batch = _Batch(n=4)
    with pytest.raises(ValueError, match="differ in length"):
        native.refresh(
            batch.params,
            [p.grad for p in batch.params[:3]],
            batch.states,
            ("m",),
            batch.table,
            batch.offsets,
            *batch.types,
        )
    with pytest.raises(ValueError, match="fewer than 2"):
        native.refresh(
            batch.params,
            None,
            batch.states,
            ("m",),
            batch.table[0].copy(),
            batch.offsets,
            *batch.types,
        )
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
@pytest.mark.parametrize("kind", KINDS[:4])
def test_the_planned_step_is_taken_only_while_nothing_changed(kind):
    """Two steps plan the group; from then on it steps from the plan; each change sends
    that step down the general path, whose result equals the per-tensor implementation."""
    name = "Adagrad" if kind == "sparse gradient" else "Adam"  # Adam refuses sparse
    batch = _Batch(n=70, dtype=torch.float64)
    params = batch.params
    twins = [p.detach().clone().requires_grad_() for p in params]
    opt = rt.OPTIMIZERS[name](params, lr=0.05, fused=True)
    ref = rt.OPTIMIZERS[name](twins, lr=0.05, foreach=False)
    for step in range(4):
        for p in params:
            p.grad = torch.randn_like(p)
        if step == 3:
            _damage(kind, batch)
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
from ravine.torch.engines import walk
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


def test_a_process_that_ends_before_the_build_still_leaves_it_cached(tmp_path):
    """The build runs in a process of its own: a run shorter than the build does not throw
    the work away (every short run would otherwise start the compiler again)."""
    import os
    import subprocess
    import sys
    import time

    # step once, work on for a moment (less than the build takes), exit
    script = _BACKGROUND.split('print("waited:')[0] + "import time; time.sleep(2)\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAVINE_CACHE_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "being built" in done.stdout
    deadline = time.monotonic() + 300  # a bound on waiting, not a speed claim
    while not list((tmp_path / "modules").glob("_ravine_walk-*")):
        assert time.monotonic() < deadline, "the detached build never finished"
        time.sleep(0.5)
    assert "waited: True c++" in _run_script(tmp_path)
