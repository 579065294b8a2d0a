"""The Triton engine's steps that never wait for the device, through Triton's interpreter:
``nonfinite`` checks, skips and GradScaler's scale stay on the device, step counts live
there, and ``capturable=True`` refuses anything a CUDA graph could not replay.

On the CPU nothing is asynchronous, so "never waits" is checked as the host's side of it:
during a step, no tensor value is read into Python (``item``, ``bool``, ``tolist``, …).
``benchmarks/gpu_check.py`` checks the same on a GPU under
``torch.cuda.set_sync_debug_mode("error")`` and replays a captured step.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

import ravine.torch as rt
from conftest import TOLERANCE, rel_err
from ravine.rules import SPECS
from ravine.torch.engines import triton_fused

NAMES = [s.name for s in SPECS]
SHAPES = [(3,), (9,), (2, 3)]

pytestmark = [
    pytest.mark.skipif(
        triton_fused.import_problem() is not None,
        reason=f"Triton is not importable: {triton_fused.import_problem()}",
    ),
    pytest.mark.usefixtures("interpret"),
]


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(triton_fused, "CHUNK", 8)
    monkeypatch.setattr(triton_fused, "BLOCK", 8)


def _params(shapes=SHAPES):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in shapes]


def _grads(step, poison=False):
    gen = torch.Generator().manual_seed(100 + step)
    grads = [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
    if poison:
        grads[1].view(-1)[4] = float("nan")
    return grads


def _set(params, grads):
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()


@pytest.fixture(scope="module")
def gpu_check():
    """benchmarks/gpu_check.py, whose ``no_host_sync("cpu")`` makes any read of a tensor's
    value into Python raise (the host's side of a sync): the same stand-in its dry run
    uses."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unchanged(params, before):
    return all(torch.equal(p.detach(), b) for p, b in zip(params, before, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_poisoned_steps_are_skipped_on_the_device(name):
    poisoned = {1, 3}
    params, clean = _params(), _params()
    opt = rt.OPTIMIZERS[name](params, lr=0.05, fused="triton", nonfinite="skip")
    reference = rt.OPTIMIZERS[name](clean, lr=0.05, foreach=False)
    for step in range(6):
        _set(params, _grads(step, poison=step in poisoned))
        opt.step()
        if step not in poisoned:
            _set(clean, _grads(step))
            reference.step()
    for a, b in zip(params, clean, strict=True):
        assert rel_err(a, b) <= TOLERANCE[torch.float64]
        state, expected = opt.state[a], reference.state[b]
        assert float(state["step"]) == expected["step"] == 4
        for key, value in expected.items():
            if isinstance(value, torch.Tensor):
                assert rel_err(state[key], value) <= TOLERANCE[torch.float64], key
    assert opt.skipped_steps == 2


def test_a_skipped_step_leaves_every_byte_in_place():
    params = _params()
    opt = rt.Adam(params, lr=0.05, fused="triton", nonfinite="skip")
    _set(params, _grads(0))
    opt.step()
    before = [p.detach().clone() for p in params]
    state = {k: v.clone() for k, v in opt.state[params[0]].items()}
    _set(params, _grads(1, poison=True))
    opt.step()
    assert _unchanged(params, before)
    assert all(torch.equal(opt.state[params[0]][k], v) for k, v in state.items())
    assert opt.skipped_steps == 1
    opt.skipped_steps = 0  # a reset clears the device counter too
    assert opt.skipped_steps == 0


def test_raise_changes_nothing_and_is_reported_at_the_next_step():
    params = _params()
    opt = rt.RMSProp(params, lr=0.05, fused="triton", nonfinite="raise")
    _set(params, _grads(0))
    opt.step()
    before = [p.detach().clone() for p in params]
    _set(params, _grads(1, poison=True))
    opt.step()  # found on the device: the host does not wait to learn it
    assert _unchanged(params, before)
    _set(params, _grads(2))
    with pytest.raises(FloatingPointError, match="previous step held NaN/Inf.*changed nothing"):
        opt.step()
    assert _unchanged(params, before)
    opt.step()  # reported once; a clean step proceeds
    assert not torch.equal(params[0].detach(), before[0])
    assert float(opt.state[params[0]]["step"]) == 2


@pytest.mark.parametrize("name", ["Adam", "NAdam", "NormalizedGD"])
def test_a_step_reads_no_tensor_value_on_the_host(name, gpu_check):
    params = _params()
    opt = rt.OPTIMIZERS[name](params, lr=0.05, fused="triton", nonfinite="skip")
    _set(params, _grads(0))
    opt.step()  # the first step places the step counts on the device
    for step in (1, 2):
        _set(params, _grads(step, poison=step == 2))
        opt.grad_scale = torch.tensor(4.0)  # as GradScaler.step hands them over
        opt.found_inf = torch.tensor(0.0)
        with gpu_check.no_host_sync("cpu"):
            opt.step()
    del opt.grad_scale, opt.found_inf
    assert opt.skipped_steps == 1
    assert float(opt.state[params[0]]["step"]) == 2


def _scaled_run(fused, inf_at=(2,), steps=5):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    model = model.double()
    opt = rt.Adam(model.parameters(), lr=0.05, **({"fused": "triton"} if fused else {}))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    x = torch.linspace(-1, 1, 20, dtype=torch.float64).reshape(5, 4)
    grads, scales = [], []
    for step in range(steps):
        opt.zero_grad()
        loss = model(x).pow(2).mean() * (float("inf") if step in inf_at else 1.0)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        grads.append([p.grad.clone() for p in model.parameters()])
        scales.append(scaler.get_scale())
    return model, opt, grads, scales


def test_grad_scaler_steps_match_the_per_tensor_path():
    model, opt, grads, scales = _scaled_run(fused=True)
    ref_model, ref_opt, ref_grads, ref_scales = _scaled_run(fused=False)
    assert opt._engines.triton is not None and opt.fallbacks == 0
    assert scales == ref_scales and scales[2] == scales[1] / 2  # the inf step backed off
    for a, b in zip(model.parameters(), ref_model.parameters(), strict=True):
        assert rel_err(a, b) <= TOLERANCE[torch.float64]
        assert float(opt.state[a]["step"]) == ref_opt.state[b]["step"] == 4
    for step in (0, 4):  # both leave the unscaled gradient in .grad, as torch's fused do
        for g, h in zip(grads[step], ref_grads[step], strict=True):
            assert rel_err(g, h) <= TOLERANCE[torch.float64]


def test_capturable_keeps_every_step_input_in_place():
    params = _params()
    opt = rt.NAdam(params, lr=0.05, fused="triton", capturable=True, nonfinite="skip")
    _set(params, _grads(0))
    opt.step()  # warm-up: tables, hyperparameters and step counts move to the device once
    engine = opt._engines.triton

    def kept():  # what a step reads; a replayed graph reads the same addresses
        caches = (engine._tables, engine._constants, engine._flags)
        return [{k: id(v) for k, v in cache.items()} for cache in caches]

    before = kept()
    steps = [opt.state[p]["step"] for p in params]
    for step in (1, 2):
        for p, g in zip(params, _grads(step), strict=True):
            p.grad.copy_(g)  # in place, as a captured backward writes them
        opt.step()
    assert kept() == before
    assert all(opt.state[p]["step"] is s for p, s in zip(params, steps, strict=True))
    assert [float(s) for s in steps] == [3.0] * len(params)
    assert opt.state_dict()["param_groups"][0]["capturable"] is True


def test_capturable_refuses_a_tensor_the_kernels_cannot_stream():
    p = torch.randn(4, 3, dtype=torch.float64).t().requires_grad_()  # not contiguous
    opt = rt.Adam([p], fused="triton", capturable=True)
    p.grad = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"capturable=True.*shape \(3, 4\).*capturable=False"):
        opt.step()


def test_capturable_is_checked_where_it_is_given():
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"capturable=True needs the Triton.*fused=None.*valid"):
        rt.Adam([p], capturable=True)
    with pytest.raises(TypeError, match="capturable must be True or False, got 1"):
        rt.Adam([p], fused="triton", capturable=1)
    opt = rt.Adam([p], fused="triton")
    with pytest.raises(ValueError, match="capturable=True needs the Triton"):
        opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "fused": False,
                             "capturable": True})  # fmt: skip


def test_a_checkpoint_of_device_step_counts_loads_anywhere():
    params = _params()
    opt = rt.NAdam(params, lr=0.05, fused="triton")
    for step in range(2):
        _set(params, _grads(step))
        opt.step()
    saved = copy.deepcopy(opt.state_dict())  # its tensors are the live state, as torch's
    assert isinstance(saved["state"][0]["mu_product"], float)  # a number, as other engines
    twin = _params()
    with torch.no_grad():
        for a, b in zip(twin, params, strict=True):
            a.copy_(b)
    other = rt.NAdam(twin, lr=0.05, foreach=False)
    other.load_state_dict(saved)
    for opt_, ps in ((opt, params), (other, twin)):
        _set(ps, _grads(2))
        opt_.step()
    for a, b in zip(params, twin, strict=True):
        assert rel_err(a, b) <= TOLERANCE[torch.float64]


@pytest.mark.parametrize("nonfinite", ["skip", "raise"])
def test_a_grad_scaler_overflow_is_neither_raised_nor_counted(nonfinite):
    """GradScaler's own overflow steps are its business (regression: under "raise" the
    next step raised, and GradScaler's grad_scale was left on the optimizer)."""
    runs = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2).double()
        kw = {"fused": "triton"} if fused else {"foreach": False}
        opt = rt.Adam(model.parameters(), lr=0.05, nonfinite=nonfinite, **kw)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
        x = torch.ones(4, 3, dtype=torch.float64)
        for step in range(4):
            opt.zero_grad()
            loss = model(x).sum() * (float("inf") if step == 1 else 1.0)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        assert not hasattr(opt, "grad_scale") and not hasattr(opt, "found_inf")
        runs.append((opt.skipped_steps, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0] == 0
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        assert rel_err(a, b) <= TOLERANCE[torch.float64]


def test_the_skip_counter_is_reset_in_place():
    params = _params()
    opt = rt.SGD(params, lr=0.05, fused="triton", nonfinite="skip")
    _set(params, _grads(0, poison=True))
    opt.step()
    counter = opt._engines.triton._skipped
    opt.skipped_steps = 0  # a captured graph keeps adding to the same memory
    assert opt._engines.triton._skipped is counter and opt.skipped_steps == 0


def test_a_refused_capturable_step_changes_no_group():
    a = torch.randn(5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, 3, dtype=torch.float64).t().requires_grad_()  # not contiguous
    opt = rt.Adam([{"params": [a]}, {"params": [b]}], fused="triton", capturable=True)
    a.grad, b.grad = torch.ones(5, dtype=torch.float64), torch.ones(3, 4, dtype=torch.float64)
    before = a.detach().clone()
    with pytest.raises(RuntimeError, match="nothing was changed"):
        opt.step()
    assert torch.equal(a.detach(), before) and not opt.state[a]


def test_step_counts_past_float32_load_exactly():
    params = _params()
    opt = rt.Adam(params, lr=0.05, fused="triton")
    _set(params, _grads(0))
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    for entry in saved["state"].values():
        entry["step"] = torch.tensor(2.0**24 + 1, dtype=torch.float64)
    opt.load_state_dict(saved)  # torch would cast a fused group's step to float32
    _set(params, _grads(1))
    opt.step()
    assert float(opt.state[params[0]]["step"]) == 2.0**24 + 2


def test_hyperparameters_change_in_place_between_steps():
    params = _params()
    opt = rt.Adam(params, lr=0.05, fused="triton")
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    vectors = set()
    for step in range(3):
        _set(params, _grads(step))
        opt.step()
        scheduler.step()
        vectors |= {id(v) for _, v in opt._engines.triton._hyperparameters.values()}
    assert len(vectors) == 1  # one vector per group, rewritten (a graph reads one address)
    twin = _params()
    ref = rt.Adam(twin, lr=0.05, foreach=False)
    ref_scheduler = torch.optim.lr_scheduler.StepLR(ref, step_size=1, gamma=0.5)
    for step in range(3):
        _set(twin, _grads(step))
        ref.step()
        ref_scheduler.step()
    for x, y in zip(params, twin, strict=True):
        assert rel_err(x, y) <= TOLERANCE[torch.float64]
