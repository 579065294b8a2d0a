"""The fused implementation's own contract: cached pointer tables never go stale, tensors it
cannot stream fall back visibly, kernels are cached on disk, a missing compiler is loud."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import ravine.torch as rt
from conftest import IMPLEMENTATIONS, TOLERANCE, rel_err
from ravine.codegen import native as build
from ravine.rules import SPECS

pytestmark = pytest.mark.usefixtures("walker")  # each test under both walks

NAMES = [s.name for s in SPECS]


def _pair(name, make_params, **hp):
    """(fused optimizer, per-tensor optimizer) over identical copies of the parameters."""
    a, b = make_params(), make_params()
    return (a, rt.OPTIMIZERS[name](a, fused=True, **hp)), (
        b,
        rt.OPTIMIZERS[name](b, foreach=False, **hp),
    )


def _params():
    gen = torch.Generator().manual_seed(0)
    return [
        torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_()
        for s in ((4, 3), (5,), (2, 2))
    ]


def _step(params, opt, step):
    gen = torch.Generator().manual_seed(100 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
    opt.step()


def _assert_same(pa, pb):
    for a, b in zip(pa, pb, strict=True):
        assert rel_err(a, b) <= TOLERANCE[torch.float64]


@pytest.mark.parametrize("name", NAMES)
def test_state_replaced_by_hand_is_noticed(name):
    (pa, fa), (pb, fb) = _pair(name, _params, lr=0.05)
    for step in range(6):
        if step == 3:
            for opt, ps in ((fa, pa), (fb, pb)):
                for key, value in opt.state[ps[0]].items():
                    if isinstance(value, torch.Tensor):  # a new tensor object, same values
                        opt.state[ps[0]][key] = value.clone()
        _step(pa, fa, step)
        _step(pb, fb, step)
    _assert_same(pa, pb)
    for key, value in fb.state[pb[0]].items():
        if isinstance(value, torch.Tensor):
            assert rel_err(fa.state[pa[0]][key], value) <= TOLERANCE[torch.float64]


def test_step_count_edited_for_one_parameter_splits_the_batch():
    (pa, fa), (pb, fb) = _pair("Adam", _params, lr=0.05)
    for step in range(5):
        if step == 2:
            fa.state[pa[1]]["step"] = 10
            fb.state[pb[1]]["step"] = 10
        _step(pa, fa, step)
        _step(pb, fb, step)
    _assert_same(pa, pb)
    assert fa.state[pa[1]]["step"] == 13 and fa.state[pa[0]]["step"] == 5


@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict_mid_run_continues_exactly(name):
    params = _params()
    opt = rt.OPTIMIZERS[name](params, lr=0.05, fused=True)
    twin = [p.detach().clone().requires_grad_() for p in params]
    for step in range(3):
        _step(params, opt, step)
    saved = copy.deepcopy(opt.state_dict())
    reference = [p.detach().clone() for p in params]
    for step in range(3, 6):
        _step(params, opt, step)
    with torch.no_grad():  # rewind the parameters and load the saved state into the same optimizer
        for p, r in zip(params, reference, strict=True):
            p.copy_(r)
    opt.load_state_dict(saved)
    for step in range(3, 6):
        _step(params, opt, step)
    other = rt.OPTIMIZERS[name](twin, lr=0.05, foreach=False)
    for step in range(6):
        _step(twin, other, step)
    _assert_same(params, twin)


def test_parameter_storage_replaced_mid_run():
    (pa, fa), (pb, fb) = _pair("Momentum", _params, lr=0.1)
    for step in range(5):
        if step == 2:
            for p in (pa[0], pb[0]):
                p.data = p.data.clone()  # new storage, as module.to(...) does
        _step(pa, fa, step)
        _step(pb, fb, step)
    _assert_same(pa, pb)


@pytest.mark.parametrize("name", NAMES)
def test_layouts_it_cannot_stream_fall_back_and_agree(name):
    def make():
        gen = torch.Generator().manual_seed(0)
        transposed = torch.randn(3, 4, generator=gen, dtype=torch.float64).t().requires_grad_()
        conv = torch.randn(2, 3, 3, 3, generator=gen, dtype=torch.float64)
        conv = conv.to(memory_format=torch.channels_last).requires_grad_()
        dense = torch.randn(6, generator=gen, dtype=torch.float64).requires_grad_()
        return [transposed, conv, dense]

    (pa, fa), (pb, fb) = _pair(name, make, lr=0.05)
    for step in range(4):
        _step(pa, fa, step)
        _step(pb, fb, step)
    _assert_same(pa, pb)
    assert fa.fallbacks > 0
    assert not pa[0].is_contiguous() and pa[1].is_contiguous(memory_format=torch.channels_last)


def test_static_option_changed_mid_run_compiles_a_new_kernel():
    (pa, fa), (pb, fb) = _pair("Adam", _params, lr=0.05)
    for step in range(4):
        if step == 2:
            for opt in (fa, fb):
                opt.param_groups[0]["maximize"] = True
                opt.param_groups[0]["weight_decay"] = 0.1
        _step(pa, fa, step)
        _step(pb, fb, step)
    _assert_same(pa, pb)


def test_pickle_and_deepcopy_continue_identically():
    params = _params()
    opt = rt.Adam(params, lr=0.05, fused=True)
    for step in range(3):
        _step(params, opt, step)
    twins = [copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))]
    for step in range(3, 6):
        _step(params, opt, step)
        for twin in twins:
            _step(twin.param_groups[0]["params"], twin, step)
    for twin in twins:
        twin_params = twin.param_groups[0]["params"]
        assert twin.state[twin_params[0]]["step"] == 6
        for a, b in zip(twin_params, params, strict=True):
            assert a is not b and torch.equal(a.detach(), b.detach())


def test_missing_compiler_warns_and_falls_back(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    build.compiler.cache_clear()
    try:
        p = torch.ones(3, requires_grad=True)
        opt = rt.Adam([p], lr=0.1)  # default: fused where possible
        p.grad = torch.ones(3)
        with pytest.warns(RuntimeWarning, match="fused kernels unavailable") as caught:
            opt.step()
        assert caught[0].filename == __file__  # the user's line, not ravine's or torch's
        assert p.detach().lt(1).all()
        with warnings.catch_warnings(record=True) as later:  # regression: warned every step
            warnings.simplefilter("always")
            opt.step()
        assert not later
        with pytest.raises(RuntimeError, match="fused=True: no C compiler"):
            strict = rt.Adam([p], lr=0.1, fused=True)
            strict.step()
    finally:
        build.compiler.cache_clear()


def test_fused_and_foreach_exclude_each_other():
    with pytest.raises(ValueError, match="foreach=True and fused=True"):
        rt.Adam([torch.zeros(1, requires_grad=True)], foreach=True, fused=True)


def test_kernels_are_cached_on_disk_across_processes(tmp_path):
    script = textwrap.dedent(
        """
        import torch, ravine.torch as rt
        p = torch.ones(5, requires_grad=True)
        opt = rt.RMSProp([p], lr=0.1, fused=True)
        p.grad = torch.full((5,), 0.5)
        opt.step()
        print(p.detach().tolist())
        """
    )
    env = {**os.environ, "RAVINE_CACHE_DIR": str(tmp_path)}
    first = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    libraries = sorted((tmp_path / "kernels").glob("*.so"))
    stamps = [lib.stat().st_mtime_ns for lib in libraries]
    second = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert libraries and sorted((tmp_path / "kernels").glob("*.so")) == libraries
    assert [lib.stat().st_mtime_ns for lib in libraries] == stamps  # loaded, not rebuilt
    assert first.stdout == second.stdout


@pytest.mark.parametrize("name", NAMES)
def test_plan_is_reused_between_steps(name, monkeypatch):
    """After the first step (which creates the state) no step re-plans: the per-step cost
    is the checks, not a rebuild."""
    from ravine.torch.engines import cpu_fused as fused

    params = _params()
    opt = rt.OPTIMIZERS[name](params, lr=0.05, fused=True)
    _step(params, opt, 0)
    plans = []
    original = fused.FusedEngine._plan
    monkeypatch.setattr(
        fused.FusedEngine, "_plan", lambda self, *a: plans.append(1) or original(self, *a)
    )
    for step in range(1, 6):
        _step(params, opt, step)
    assert plans == []
    opt.state[params[0]]["step"] += 0  # any outside write invalidates the plan ...
    _step(params, opt, 6)
    assert plans == [1]  # ... once


def test_reload_into_the_same_optimizer_is_noticed():
    """Regression (found by tests/test_sequences.py): load_state_dict builds a new state store
    whose change counter restarted, so it could equal the one the cached plan had seen and
    the next step updated the replaced state tensors instead of the loaded ones."""
    results = []
    for impl in ({"foreach": False}, {"fused": True}):
        params = [torch.ones(4, dtype=torch.float64, requires_grad=True) for _ in range(3)]
        extra = torch.ones(5, dtype=torch.float64, requires_grad=True)
        opt = rt.AdaDelta(params, lr=0.05, **impl)
        opt.add_param_group({"params": [extra], "lr": 0.01})
        for k in range(2):
            params[2].grad = torch.ones(4, dtype=torch.float64)
            extra.grad = torch.ones(5, dtype=torch.float64)
            opt.step()
            if k == 0:
                opt.load_state_dict(copy.deepcopy(opt.state_dict()))
        results.append((opt.state[params[2]]["step"], params[2].detach().clone()))
    assert results[1][0] == results[0][0] == 2
    assert torch.equal(results[1][1], results[0][1])


@pytest.mark.parametrize("name", ["Adagrad", "Adam", "NAdam", "NAG"])
def test_a_subset_stepped_in_between_is_noticed(name):
    """Regression (found by tests/test_sequences.py): a plan cached for all parameters kept
    batching them as one step count after a step that moved only some of them."""
    results = []
    for impl in ({"foreach": False}, {"fused": True}):
        params = [torch.ones(4, dtype=torch.float64, requires_grad=True) for _ in range(3)]
        opt = rt.OPTIMIZERS[name](params, lr=0.05, **impl)
        for mask in ([1, 1, 1], [0, 0, 1], [1, 1, 1]):
            for p, m in zip(params, mask, strict=True):
                p.grad = torch.full((4,), 0.5, dtype=torch.float64) if m else None
            opt.step()
        results.append(
            ([opt.state[p]["step"] for p in params], [p.detach().clone() for p in params])
        )
    assert results[0][0] == results[1][0] == [2, 2, 3]
    for a, b in zip(results[0][1], results[1][1], strict=True):
        assert rel_err(b, a) <= TOLERANCE[torch.float64]


@pytest.mark.parametrize("name", NAMES)
def test_lazily_conjugated_complex_gradient(name):
    """Regression: a complex gradient with torch's lazy conjugate bit (``g.conj()``) keeps
    the unconjugated values in memory. The fused kernel streamed that memory (a wrong sign
    on every imaginary part) and the other implementations raised; all now step with the
    conjugated values, as with the same gradient resolved."""
    gen = torch.Generator().manual_seed(3)
    start = torch.randn(6, generator=gen, dtype=torch.complex128)
    grads = [torch.randn(6, generator=gen, dtype=torch.complex128) for _ in range(3)]
    results = []
    for impl, lazy in [(i, True) for i in IMPLEMENTATIONS.values()] + [({"foreach": False}, 0)]:
        p = start.clone().requires_grad_()
        opt = rt.OPTIMIZERS[name]([p], lr=0.05, **impl)
        for g in grads:
            p.grad = g.conj() if lazy else g.conj().resolve_conj()
            assert p.grad.is_conj() == bool(lazy)
            opt.step()
        results.append(p.detach())
    for result in results[:-1]:
        assert rel_err(torch.view_as_real(result), torch.view_as_real(results[-1])) <= 1e-12


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("t", [1, 2, 37, 10**6])
def test_compiled_scalars_equal_the_graph_walk(spec, t):
    """The fused step evaluates its scalars (bias corrections, μ-products, the look-ahead
    shift, lr) with a compiled straight-line function; it must give exactly what walking
    the traced graph gives, for every rule and step count."""
    from ravine.codegen import trace
    from ravine.codegen.program import evaluate

    hp = {**spec.defaults, "lr": 0.03, "weight_decay": 0.01}
    program = trace.trace(spec, hp)
    env = {name: float(hp[name]) for name in program.scalar_inputs if name in hp}
    env.update({"t": float(t), **{f: 0.37 for f in spec.scalar_state}})
    for node in program.reductions:
        env[f"reduction:{id(node)}"] = 2.5
    for which, nodes in (
        ("update", [*program.kernel_scalars(), *program.scalar_outputs.values()]),
        ("reduction", program.reduction_scalars()),
    ):
        expected = [evaluate(node, env) for node in nodes]
        assert program.evaluator(which)(env) == expected


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_kernels_multiply_by_reciprocals_of_per_step_scalars(spec):
    """Division is the one slow operation: an element divided by a per-step scalar (bias
    corrections, normalized GD's norm) is multiplied by its reciprocal, computed once in
    double (Adam's in-cache kernel at 2000 × 2048: 2.3 → 1.7–2.0 ms). Parity with the
    per-tensor rule is checked by the step tests, in every dtype."""
    import re

    from ravine.codegen import c as codegen
    from ravine.codegen import trace

    program = trace.trace(spec, {**spec.defaults, "lr": 0.03})
    for storage in ("float64", "float32", "bfloat16", "float16"):
        source = codegen.generate(program, storage)
        assert not re.search(r"/ s\d+;", source), storage
        if spec.name in ("Adam", "NAdam"):
            assert re.search(r"\* r\d+;", source) and "(1.0 / sc[" in source
    # compact state divides as the per-tensor reference does (its codes must match exactly)
    if spec.name in ("Adam", "NAdam"):
        formats = {
            name: "8bit-signed" if name == "m" else "8bit-unsigned" for name in program.arrays
        }
        source = codegen.generate(program, {**formats, "p": "float32", "g": "float32"})
        assert re.search(r"/ s\d+;", source) and "(1.0 / sc[" not in source


def _square_pair(name):
    gen = torch.Generator().manual_seed(5)
    start = [torch.randn(4, 4, generator=gen, dtype=torch.float64) for _ in range(3)]
    return _pair(name, lambda: [t.clone().requires_grad_() for t in start], lr=0.05)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_parameter_transposed_in_place_is_noticed(name):
    """Regression (review): ``p.data = p.data.t()`` keeps the address but not the layout;
    the plan checked only the address, and every later fused step was wrong (SGD by 0.82)."""
    (pa, a), (pb, b) = _square_pair(name)
    for step in range(5):
        if step == 2:
            for p in (*pa, *pb):
                p.data = p.data.t()
        _step(pa, a, step)
        _step(pb, b, step)
    _assert_same(pa, pb)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_parameters_swapped_with_swap_tensors_are_noticed(name):
    """``torch.utils.swap_tensors`` (load_state_dict(assign=True), swap-on-conversion
    module.to) gives a Python parameter another TensorImpl: the walk must follow it, so
    the step writes the new memory and never the old one (now another tensor's)."""
    (pa, a), (pb, b) = _square_pair(name)
    old = []
    for step in range(5):
        if step == 2:
            for p in (*pa, *pb):
                fresh = p.detach().clone().requires_grad_()
                torch.utils.swap_tensors(p, fresh)  # p now holds the clone's memory
                old.append((fresh, fresh.detach().clone()))
        _step(pa, a, step)
        _step(pb, b, step)
    _assert_same(pa, pb)
    for tensor, values in old:
        assert torch.equal(tensor.detach(), values)  # the swapped-out memory is untouched


@pytest.mark.parametrize("name", ["Momentum", "Adam"])
def test_state_tensor_replaced_through_data_is_noticed(name):
    """Regression (review): ``opt.state[p]["m"].data = …`` is no dict write, so the state's
    change counter stayed; the kernel kept writing into the freed tensor (heap corruption
    or stale state). The plan now re-checks every state tensor's memory each step."""
    (pa, a), (pb, b) = _square_pair(name)
    for step in range(5):
        if step == 2:
            for params, opt in ((pa, a), (pb, b)):
                for p in params:
                    for value in opt.state[p].values():
                        if isinstance(value, torch.Tensor):
                            value.data = value.data.clone()
        _step(pa, a, step)
        _step(pb, b, step)
    _assert_same(pa, pb)
    for p, q in zip(pa, pb, strict=True):
        for field, value in b.state[q].items():
            if isinstance(value, torch.Tensor):
                assert rel_err(a.state[p][field], value) <= TOLERANCE[torch.float64]


def test_gradient_of_another_shape_is_refused_as_the_reference_refuses_it():
    """Regression (review): ``p.grad.data = <other shape>`` bypasses torch's check; the
    kernel read past the gradient's end. Now it goes to the per-tensor path, which raises."""
    (pa, a), (pb, b) = _square_pair("Adam")
    _step(pa, a, 0)
    _step(pb, b, 0)
    for params, opt in ((pa, a), (pb, b)):
        params[1].grad.data = torch.randn(10, dtype=torch.float64)
        with pytest.raises(RuntimeError):
            opt.step()


@pytest.mark.parametrize(
    "change",
    ["clear", "pop", "popitem", "update", "ior", "setdefault", "replaced by a plain dict"],
)
def test_every_way_of_changing_the_state_store_is_noticed(change):
    """Regression (review): ``opt.state.clear()`` (and pop, popitem, update, |=) did not
    count as a change, so the fused plan kept stepping the old state dicts; and assigning a
    plain ``defaultdict`` to ``opt.state`` made every step raise AttributeError."""
    from collections import defaultdict

    (pa, a), (pb, b) = _square_pair("Adam")
    for step in range(5):
        if step == 2:
            for params, opt in ((pa, a), (pb, b)):
                first = opt.state[params[0]]
                if change == "clear":
                    opt.state.clear()
                elif change == "pop":
                    opt.state.pop(params[0])
                elif change == "popitem":
                    opt.state.popitem()
                elif change == "update":
                    opt.state.update({params[0]: {}})
                elif change == "ior":
                    opt.state |= {params[0]: {}}
                elif change == "setdefault":
                    opt.state.pop(params[0])
                    opt.state.setdefault(params[0], dict(first))
                else:
                    opt.state = defaultdict(dict)
        _step(pa, a, step)
        _step(pb, b, step)
    _assert_same(pa, pb)
    assert len(a.state_dict()["state"]) == len(b.state_dict()["state"]) == 3


def test_every_way_of_changing_a_parameters_state_is_noticed():
    (pa, a), _ = _square_pair("Adam")
    _step(pa, a, 0)
    state = a.state[pa[0]]
    for change in (
        lambda: state.popitem(),
        lambda: state.__ior__({"step": 1}),
        lambda: state.pop("step"),
        lambda: state.setdefault("step", 0),
        lambda: state.update(step=2),
    ):
        before = a.state.version
        change()
        assert a.state.version != before


def test_a_removed_param_group_is_not_kept_alive_by_its_plan():
    """Regression: each group's cached plan holds its tensors; after ``del
    opt.param_groups[i]`` the removed parameters (and their state) stayed in memory."""
    import gc
    import weakref

    kept, removed = torch.zeros(4, requires_grad=True), torch.zeros(4, requires_grad=True)
    opt = rt.Adam([{"params": [kept]}, {"params": [removed]}], lr=0.1, fused=True)
    kept.grad, removed.grad = torch.ones(4), torch.ones(4)
    opt.step()
    gone = weakref.ref(removed)
    del opt.param_groups[1]
    opt.state.pop(removed)
    del removed
    kept.grad = torch.ones(4)
    opt.step()
    gc.collect()
    assert gone() is None
    assert opt.state[kept]["step"] == 2
