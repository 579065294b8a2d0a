"""The Triton engine through Triton's interpreter: the generated kernels run on CPU tensors.

``@triton.jit`` reads ``TRITON_INTERPRET`` when it decorates a function: ravine's kernel
modules are imported per mode, and call none of Triton's own ``@triton.jit`` library
functions (decorated at ``import triton``, perhaps before the variable was set), so the
fixture below can set it per test without leaking into other tests. The interpreter is
about 1000× slower than compiled code: sizes are tiny and the chunk is 8 elements, so a few
tensors cover smaller than a chunk, exactly one, straddling a boundary, and empty.
float16 storage runs here too; bfloat16 is checked on a GPU only
(``benchmarks/gpu_check.py``): the interpreter does not round to it as the GPU does.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import ravine.torch as rt
from conftest import TOLERANCE, rel_err
from ravine.codegen import trace
from ravine.codegen import triton as codegen
from ravine.rules import BY_NAME, SPECS
from ravine.torch.checkpoint import CheckpointError
from ravine.torch.engines import Devices, choose, foreach, triton_fused

NAMES = [s.name for s in SPECS]
CPU = Devices(frozenset({"cpu"}), dtensor=False)
CUDA = Devices(frozenset({"cuda"}), dtensor=False)
SHAPES = [(3,), (8,), (13,), (0,), (2, 3)]
"""With an 8-element chunk: smaller than a chunk, exactly one, straddling two, empty, 2-D."""

needs_triton = pytest.mark.skipif(
    triton_fused.import_problem() is not None,
    reason=f"Triton is not importable: {triton_fused.import_problem()}",
)


@pytest.fixture
def interpret(monkeypatch):
    """Triton's interpreter on, and chunks small enough to straddle in a few elements."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(triton_fused, "CHUNK", 8)
    monkeypatch.setattr(triton_fused, "BLOCK", 8)


def _params(dtype, shapes=SHAPES):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


def _step(params, opt, step):
    gen = torch.Generator().manual_seed(100 + step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
    opt.step()


def _run_pair(name, dtype, steps=3, shapes=SHAPES, **hp):
    """Triton and per-tensor optimizers over copies of one parameter list, ``steps`` steps."""
    a, b = _params(dtype, shapes), _params(dtype, shapes)
    fa = rt.OPTIMIZERS[name](a, fused="triton", **hp)
    fb = rt.OPTIMIZERS[name](b, foreach=False, **hp)
    for step in range(steps):
        _step(a, fa, step)
        _step(b, fb, step)
    return (a, fa), (b, fb)


def _assert_close(pa, fa, pb, fb, dtype):
    for x, y in zip(pa, pb, strict=True):
        assert rel_err(x, y) <= TOLERANCE[dtype]
        for key, value in fb.state[y].items():
            if isinstance(value, torch.Tensor):
                assert rel_err(fa.state[x][key], value) <= TOLERANCE[dtype], key
            else:
                assert fa.state[x][key] == value, key


@needs_triton
@pytest.mark.usefixtures("interpret")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("name", NAMES)
def test_parity_with_the_per_tensor_rule(name, dtype):
    (pa, fa), (pb, fb) = _run_pair(name, dtype, lr=0.05)
    assert isinstance(fa._engines.engine(fa.param_groups[0], pa), triton_fused.TritonEngine)
    assert fa.fallbacks == 0
    _assert_close(pa, fa, pb, fb, dtype)


@needs_triton
@pytest.mark.usefixtures("interpret")
@pytest.mark.parametrize("name", ["Adam", "NormalizedGD"])
def test_more_tensors_than_one_table_and_slices_within_a_chunk(name, monkeypatch):
    """Five tensors, two per address table: three launches (and NormalizedGD's partial sums
    from all three); a chunk of 8 streamed in slices of 4."""
    monkeypatch.setattr(triton_fused, "MAX_TENSORS", 2)
    monkeypatch.setattr(triton_fused, "BLOCK", 4)
    (pa, fa), (pb, fb) = _run_pair(name, torch.float64, lr=0.05)
    assert fa._engines.triton is not None and fa._engines.triton.max_tensors == 2
    _assert_close(pa, fa, pb, fb, torch.float64)


@needs_triton
@pytest.mark.usefixtures("interpret")
@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict_mid_run_continues_exactly(name):
    shapes = [(3,), (9,)]
    params = _params(torch.float64, shapes)
    opt = rt.OPTIMIZERS[name](params, lr=0.05, fused="triton")
    for step in range(2):
        _step(params, opt, step)
    saved = copy.deepcopy(opt.state_dict())
    assert saved["param_groups"][0]["fused"] == "triton"
    reference = [p.detach().clone() for p in params]
    _step(params, opt, 2)
    with torch.no_grad():  # rewind, then load the saved state into the same optimizer
        for p, r in zip(params, reference, strict=True):
            p.copy_(r)
    opt.load_state_dict(saved)
    for step in range(2, 4):
        _step(params, opt, step)
    twin = _params(torch.float64, shapes)
    other = rt.OPTIMIZERS[name](twin, lr=0.05, foreach=False)
    for step in range(4):
        _step(twin, other, step)
    _assert_close(params, opt, twin, other, torch.float64)


@needs_triton
@pytest.mark.usefixtures("interpret")
@pytest.mark.parametrize("name", ["RMSProp", "NormalizedGD"])
def test_tensors_it_cannot_stream_fall_back_and_agree(name):
    """A transposed parameter goes to the per-tensor engine, counted; NormalizedGD's norm
    must span every tensor, so its whole group goes."""
    shapes = [(3, 4), (5,)]

    def make():
        ps = _params(torch.float64, shapes)
        ps[0] = ps[0].detach().t().requires_grad_()  # not contiguous
        return ps

    a, b = make(), make()
    fa = rt.OPTIMIZERS[name](a, lr=0.05, fused="triton")
    fb = rt.OPTIMIZERS[name](b, lr=0.05, foreach=False)
    for step in range(2):
        _step(a, fa, step)
        _step(b, fb, step)
    assert fa.fallbacks == (4 if name == "NormalizedGD" else 2)
    _assert_close(a, fa, b, fb, torch.float64)


@needs_triton
@pytest.mark.usefixtures("interpret")
def test_dtypes_and_step_counts_that_differ_make_separate_batches():
    """float32 beside float64 in one group, and one tensor whose step count was edited: one
    launch per (dtype, step) batch, each as the per-tensor rule steps it."""

    def make():
        return [*_params(torch.float64, [(5,), (9,)]), *_params(torch.float32, [(4,)])]

    a, b = make(), make()
    fa = rt.Adam(a, lr=0.05, fused="triton")
    fb = rt.Adam(b, lr=0.05, foreach=False)
    for step in range(3):
        if step == 1:
            fa.state[a[1]]["step"] = fb.state[b[1]]["step"] = 10
        _step(a, fa, step)
        _step(b, fb, step)
    assert fa.state[a[1]]["step"] == 12 and fa.state[a[0]]["step"] == 3
    assert fa.fallbacks == 0
    _assert_close(a, fa, b, fb, torch.float32)


@needs_triton
@pytest.mark.usefixtures("interpret")
def test_kernels_are_cached_per_process():
    (_, fa), _ = _run_pair("Momentum", torch.float32, steps=1, shapes=[(4,)])
    (_, fb), _ = _run_pair("Momentum", torch.float32, steps=1, shapes=[(4,)])
    ka, kb = fa._engines.triton._kernels, fb._engines.triton._kernels
    assert len(ka) == 1 and list(ka.values()) == list(kb.values())  # the same module


# selection -------------------------------------------------------------------------------


@needs_triton
def test_fused_triton_on_the_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match=r"fused='triton' cannot step tensors on \['cpu'\]"):
        choose("Adam", None, "triton", CPU, False)
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.ones(3)
    opt = rt.Adam([p], fused="triton")  # checked where the devices are known: the step
    with pytest.raises(RuntimeError, match=r"TRITON_INTERPRET=1\); use fused=True or foreach"):
        opt.step()


@needs_triton
@pytest.mark.usefixtures("interpret")
def test_the_interpreter_never_reads_cuda_memory():
    with pytest.raises(RuntimeError, match="under TRITON_INTERPRET=1 it runs on CPU tensors"):
        choose("Adam", None, "triton", CUDA, False)


@needs_triton
@pytest.mark.usefixtures("interpret")
def test_fused_true_on_the_cpu_stays_the_c_engine():
    assert choose("Adam", None, True, CPU, False) == "cpu_fused"
    assert choose("Adam", None, None, CPU, False) == "cpu_fused"
    assert choose("Adam", None, "triton", CPU, False) == "triton"


def test_fused_true_on_cuda_selects_triton_and_the_default_stays_foreach():
    assert choose("Adam", None, True, CUDA, False) == "triton"
    assert choose("Adam", None, None, CUDA, False) == "foreach"
    assert choose("NormalizedGD", None, None, CUDA, True) == "foreach"  # reduce_group


def _on_cuda(opt, monkeypatch):
    """Make the optimizer's selector believe its parameters are CUDA tensors."""
    monkeypatch.setattr(opt._engines, "devices", lambda params: CUDA)


def test_without_triton_fused_true_warns_and_uses_foreach(monkeypatch):
    monkeypatch.setattr(triton_fused, "import_problem", lambda: "Triton is not installed")
    p = torch.zeros(3, requires_grad=True)
    opt = rt.Adam([p], fused=True)
    _on_cuda(opt, monkeypatch)
    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable .*uses the foreach"):
        assert opt._engines.engine(opt.param_groups[0], [p]) is foreach.step
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per optimizer
        assert opt._engines.engine(opt.param_groups[0], [p]) is foreach.step
    forced = rt.Adam([p], fused="triton")
    _on_cuda(forced, monkeypatch)
    with pytest.raises(RuntimeError, match="Adam: fused='triton' .*Triton is not installed"):
        forced._engines.engine(forced.param_groups[0], [p])
    # the warning names the engine actually used (review finding)
    quiet = rt.Adam([p], fused=True, foreach=False)
    _on_cuda(quiet, monkeypatch)
    with pytest.warns(RuntimeWarning, match="uses the per_tensor implementation"):
        quiet._engines.engine(quiet.param_groups[0], [p])


@needs_triton
@pytest.mark.usefixtures("interpret")
@pytest.mark.parametrize("decoupled", [False, True])
def test_normalized_gd_with_weight_decay(decoupled):
    """Coupled weight decay enters the norm's reduction, which must see the
    hyperparameters (it raised KeyError: 'weight_decay')."""
    hp = {"lr": 0.05, "weight_decay": 0.01, "decoupled_weight_decay": decoupled}
    (pa, fa), (pb, fb) = _run_pair("NormalizedGD", torch.float64, **hp)
    assert fa.fallbacks == 0
    _assert_close(pa, fa, pb, fb, torch.float64)


@needs_triton
@pytest.mark.usefixtures("interpret")
@pytest.mark.parametrize("first", ["real", "complex"])
def test_real_and_complex_parameters_in_one_group(first):
    """A complex tensor streams as pairs of reals: its element count is its own, whatever
    the batch's first tensor is (a real one first updated only half of it)."""
    real = torch.randn(5, dtype=torch.float32)
    cplx = torch.randn(3, dtype=torch.complex64)
    base = [real, cplx] if first == "real" else [cplx, real]
    a = [t.clone().requires_grad_() for t in base]
    b = [t.clone().requires_grad_() for t in base]
    fa, fb = rt.SGD(a, lr=0.1, fused="triton"), rt.SGD(b, lr=0.1, foreach=False)
    for step in range(2):
        _step(a, fa, step)
        _step(b, fb, step)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_fused_values_are_checked_with_what_is_valid():
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match=r"fused must be True, False, None or 'triton', got 'gpu'"):
        rt.Adam([p], fused="gpu")
    with pytest.raises(ValueError, match=r"foreach=True and fused='triton' exclude each other"):
        rt.Adam([p], fused="triton", foreach=True)
    with pytest.raises(ValueError, match=r"fused='triton' cannot take reduce_group='world'"):
        rt.NormalizedGD([p], fused="triton", reduce_group="world")


def test_a_checkpoint_saved_with_fused_triton_loads():
    p = torch.zeros(3, requires_grad=True)
    saved = rt.Adam([p], fused="triton").state_dict()
    opt = rt.Adam([p])
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["fused"] == "triton"
    saved["param_groups"][0]["fused"] = "cuda"
    with pytest.raises(CheckpointError, match="fused must be True, False, None or 'triton'"):
        opt.load_state_dict(saved)


# generated source --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_generated_source_for_every_format(spec):
    """Valid Python for every storage format; float32 divides and takes roots correctly
    rounded (Triton's ``/`` on float32 is approximate), float64 needs no such care."""
    program = trace.trace(spec, dict(spec.defaults))
    for fmt in codegen.STORAGE:
        source = codegen.generate(program, fmt)
        compile(source, fmt, "exec")
        assert ("ravine_reduce" in source) == bool(program.reductions)
        body = [line for line in source.splitlines() if line.startswith("        v")]
        if fmt == "float64":
            assert "_rn(" not in source
        else:
            assert not any(" / " in line or "tl.sqrt(" in line for line in body)


def test_constants_keep_their_sign_and_value():
    program = trace.trace(BY_NAME["Adam"], dict(BY_NAME["Adam"].defaults))
    assert codegen._const(-0.0, "tl.float32") == "tl.full([], -0.0, tl.float32)"
    assert codegen._const(float("inf"), "tl.float64") == 'tl.full([], float("inf"), tl.float64)'
    assert codegen.generate(program, "float32") == codegen.generate(program, "float32")
