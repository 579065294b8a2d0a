"""Compact optimizer state (``state_dtype=``): formats, parity between engines, checkpoints,
conversions and refusals.

The per-tensor engine is the reference. The fused C kernels generate the same loads and
stores from the format (:mod:`ravine.quantization`) and must produce the same bits. One
caveat, measured and documented in docs/state.md: torch's vectorized float32 ``sqrt`` is not
correctly rounded (it differs from IEEE sqrt in the last bit for ~17 % of inputs), the
kernels' is; so bit-for-bit parity is checked with the reference's sqrt made exact
(:func:`exact_sqrt`), and without that, for every state that no sqrt feeds.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import ravine.torch as rt
from conftest import IMPLEMENTATIONS
from ravine import quantization
from ravine.rules import BY_NAME, SPECS, _xp
from ravine.torch import CheckpointError, compact, storage
from ravine.torch.engines import foreach

COMPACT = {"8bit": "8bit", "bfloat16": torch.bfloat16}
STATEFUL = [spec.name for spec in SPECS if storage.arrays(spec)]
SHAPES = ((5000,), (70, 90), (100,))
"""Two parameters large enough for compact state (one 2-D, one not a whole number of
blocks) and one small enough to keep float32."""


def _exact(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x.double()).to(x.dtype) if x.dtype == torch.float32 else torch.sqrt(x)


@pytest.fixture
def exact_sqrt(monkeypatch):
    """The reference engines' sqrt correctly rounded, as the C kernels' is."""
    monkeypatch.setattr(_xp._TorchNamespace, "sqrt", lambda self, x: _exact(x))
    monkeypatch.setattr(
        foreach._TensorListNamespace,
        "sqrt",
        lambda self, x: foreach.TensorList([_exact(t) for t in x.tensors]),
    )


def _run(name, impl, state_dtype, steps=5, shapes=SHAPES, seed=0, **hp):
    torch.manual_seed(seed)
    params = [torch.randn(s, requires_grad=True) for s in shapes]
    opt = rt.OPTIMIZERS[name](params, state_dtype=state_dtype, **IMPLEMENTATIONS[impl], **hp)
    for i in range(steps):
        generator = torch.Generator().manual_seed(100 + i)
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
        opt.step()
    return params, opt


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.detach().contiguous().view(torch.uint8)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit (NaN equals the same NaN; −0.0 does not equal 0.0)."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def _states_equal(a, b, keys=None) -> bool:
    keys = keys or a.keys()
    return a.keys() == b.keys() and all(
        _same_bits(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in keys
    )


# ---------------------------------------------------------------- choosing a format


def test_unknown_state_dtype_raises_listing_the_valid_ones():
    p = torch.zeros(3, requires_grad=True)
    for bad in ("4bit", torch.float16, "bfloat16", 8):
        with pytest.raises(ValueError, match=r"state_dtype=.*valid: None.*float32.*'8bit'"):
            rt.Adam([p], state_dtype=bad)
    opt = rt.Adam([p])
    with pytest.raises(ValueError, match="state_dtype='fp8'"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)], "state_dtype": "fp8"})


def test_state_formats_show_which_tensors_keep_full_precision():
    small = torch.zeros(quantization.MIN_ELEMENTS - 1, requires_grad=True)
    large = torch.zeros(quantization.MIN_ELEMENTS, requires_grad=True)
    wide = torch.zeros(quantization.MIN_ELEMENTS, dtype=torch.float64, requires_grad=True)
    tiny64 = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = rt.Adam([small, large, wide, tiny64], state_dtype="8bit")
    assert opt.state_formats() == {"0.0": "float32", "0.1": "8bit", "0.2": "8bit", "0.3": "float64"}
    opt = rt.Adam([small, large], state_dtype=torch.bfloat16)
    assert opt.state_formats() == {"0.0": "float32", "0.1": "bfloat16-sr"}
    half = torch.zeros(10, dtype=torch.bfloat16, requires_grad=True)
    assert rt.Adam([half], state_dtype=torch.float32).state_formats() == {"0.0": "float32"}
    assert rt.Adam([half]).state_formats() == {"0.0": "bfloat16"}
    assert rt.SGD([large], state_dtype="8bit").state_formats() == {}  # SGD keeps no state
    # names where the groups have them, and the stored format once a state exists
    named = rt.Adam([{"params": [large], "param_names": ["w"]}], state_dtype="8bit")
    large.grad = torch.ones_like(large)
    named.step()
    assert named.state_formats() == {"w": "8bit"}
    assert named.state[large]["m_codes"].dtype == torch.uint8


def test_min_compact_size_moves_the_threshold_and_is_checked():
    small = torch.zeros(10, requires_grad=True)
    assert rt.Adam([small], state_dtype="8bit", min_compact_size=0).state_formats() == {
        "0.0": "8bit"
    }
    assert rt.Adam([small], state_dtype="8bit", min_compact_size=11).state_formats() == {
        "0.0": "float32"
    }
    for bad in (-1, 2.5, True, "4096"):
        with pytest.raises(ValueError, match=r"min_compact_size=.*valid: an int >= 0"):
            rt.Adam([small], min_compact_size=bad)
    opt = rt.Adam([small], state_dtype="8bit")
    opt.add_param_group({"params": [torch.zeros(4, requires_grad=True)], "min_compact_size": 0})
    assert opt.state_formats() == {"0.0": "float32", "1.0": "8bit"}


@pytest.mark.parametrize("name", STATEFUL)
def test_bytes_of_state_per_parameter(name):
    """≤ 2.1 bytes per parameter with two state tensors in 8-bit, ≤ 1.05 with one; 2 per
    tensor in bfloat16 (plus 4 bytes of seed per parameter tensor)."""
    n = 1 << 20
    p = torch.zeros(n, requires_grad=True)
    p.grad = torch.ones(n)
    count = len(storage.arrays(BY_NAME[name]))
    for kind, limit in (("8bit", 1.05 * count), (torch.bfloat16, 2.0 * count)):
        opt = rt.OPTIMIZERS[name]([p], state_dtype=kind)
        opt.step()
        state = opt.state[p]
        stored = sum(v.numel() * v.element_size() for v in state.values() if torch.is_tensor(v))
        assert stored / n <= limit, (kind, stored / n)
        assert stored / n >= count * (1 if kind == "8bit" else 2)


# ---------------------------------------------------------------- the codecs


@pytest.mark.parametrize("signed", [True, False])
def test_quantize_takes_the_nearest_code_ties_to_the_lower(signed):
    codes = torch.from_numpy(quantization.SIGNED if signed else quantization.UNSIGNED)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3 * quantization.BLOCK + 17, generator=generator) ** 4
    if signed:
        x = x * torch.where(torch.rand(x.shape, generator=generator) < 0.5, -1.0, 1.0)
    q, absmax = compact.quantize(x, signed)
    blocks = torch.nn.functional.pad(x, (0, 4 * quantization.BLOCK - x.numel())).view(4, -1)
    assert torch.equal(absmax, blocks.abs().amax(dim=1))
    y = (blocks / absmax[:, None]).reshape(-1)[: x.numel()]
    distance = (y[:, None].double() - codes[None, :].double()).abs()
    nearest = distance.argmin(dim=1)  # argmin returns the first (lower) of equal distances
    assert torch.equal(q.long(), nearest)
    # decoding: the code's value times its block's absmax
    decoded = compact.dequantize(q, absmax, signed)
    expected = codes[q.long()] * absmax.repeat_interleave(quantization.BLOCK)[: x.numel()]
    assert torch.equal(decoded, expected)


@pytest.mark.parametrize("signed", [True, False])
def test_quantization_error_is_within_the_documented_bound(signed):
    """|x − decode(encode(x))| ≤ half the widest gap between codes × absmax: 0.00703 × absmax
    signed, 0.00352 unsigned (docs/state.md)."""
    codes = quantization.SIGNED if signed else quantization.UNSIGNED
    bound = float(np.diff(codes.astype(np.float64)).max() / 2)
    assert bound == pytest.approx(0.00703 if signed else 0.00352, abs=1e-5)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(50_000, generator=generator)
    x = x if signed else x.abs()
    q, absmax = compact.quantize(x, signed)
    error = (compact.dequantize(q, absmax, signed) - x).abs()
    scale = absmax.repeat_interleave(quantization.BLOCK)[: x.numel()]
    # (plus float32's rounding of code × absmax and of x / absmax)
    assert bool((error <= (bound + 2**-22) * scale).all())


def test_quantize_edge_cases():
    x = torch.zeros(quantization.BLOCK * 3)
    x[quantization.BLOCK] = float("nan")  # block 1 holds a NaN
    x[2 * quantization.BLOCK :] = -0.0  # block 2 only (negative) zeros
    q, absmax = compact.quantize(x, signed=True)
    assert absmax[0] == 0 and absmax[1].isnan() and absmax[2] == 0
    zero = int((quantization.SIGNED == 0).nonzero()[0][0])
    assert bool((q == zero).all())
    decoded = compact.dequantize(q, absmax, signed=True)
    assert bool((decoded[: quantization.BLOCK] == 0).all())
    assert bool(decoded[quantization.BLOCK : 2 * quantization.BLOCK].isnan().all())


def test_stochastic_rounding_is_unbiased_and_keeps_representable_values():
    x = torch.full((200_000,), 1.0 + 2**-9)  # a quarter of the way between two bfloat16s
    rounded = compact.round_stochastic(x, key=12345).float()
    low, high = 1.0, 1.0 + 2**-7
    assert set(rounded.unique().tolist()) == {low, high}
    assert abs((rounded == high).float().mean().item() - 0.25) < 0.01  # unbiased
    exact = torch.tensor([0.0, -0.0, 1.0, -2.5, float("inf"), float("-inf"), 3.0e38])
    exact = exact.to(torch.bfloat16).float()  # values bfloat16 holds exactly
    out = compact.round_stochastic(exact, key=7).float()
    assert torch.equal(out, exact.to(torch.bfloat16).float())
    assert compact.round_stochastic(torch.tensor([float("nan")]), key=1).isnan().all()
    # another key, other bits
    other = compact.round_stochastic(x, key=54321)
    assert not torch.equal(other, rounded.to(torch.bfloat16))


def test_signed_codes_round_stochastically_and_unbiased():
    """A magnitude between two codes takes the upper one with probability equal to the
    distance covered; a code's own value never moves (quantization.round_up)."""
    magnitudes = quantization.magnitudes(signed=True)
    low, high = float(magnitudes[100]), float(magnitudes[101])
    x = torch.full((100 * quantization.BLOCK,), low + 0.3 * (high - low))
    x[1::2] *= -1  # the sign is kept, the magnitude rounded
    x[:: quantization.BLOCK] = 1.0  # each block's absmax: y = x
    codes, absmax = compact.quantize(x, signed=True, key=99)
    decoded = compact.dequantize(codes, absmax, signed=True).view(100, -1)
    values = decoded[:, 1:].abs()
    assert set(values.unique().tolist()) == {low, high}
    assert abs((values == high).float().mean().item() - 0.3) < 0.01  # unbiased
    exact = torch.from_numpy(quantization.SIGNED.copy())  # every code's own value
    codes, absmax = compact.quantize(exact, signed=True, key=5)
    assert torch.equal(compact.dequantize(codes, absmax, signed=True), exact)
    nan = compact.quantize(torch.tensor([1.0, float("nan")]), signed=True, key=5)[0]
    assert nan[1] == len(quantization.SIGNED) // 2


def test_an_8bit_momentum_buffer_follows_small_increments():
    """Regression for the quality miss of nearest codes: m ← 0.99·m + g grows by less
    than half a code per step, which nearest rounding loses; stochastic codes follow
    float32 on average (docs/state.md)."""
    n = 8192
    runs = {}
    for state_dtype in (None, "8bit"):
        p = torch.zeros(n, requires_grad=True)
        opt = rt.Momentum([p], lr=0.0, beta=0.99, ema=False, state_dtype=state_dtype,
                          min_compact_size=0, foreach=False)  # fmt: skip
        for _ in range(300):
            p.grad = torch.full((n,), 0.05)
            p.grad[0] = 0.43  # the block's largest: the others sit between two codes
            opt.step()
        m = (
            opt.state[p]["m"]
            if state_dtype is None
            else storage.decode(opt.spec, opt.state[p], "m")
        )
        runs[state_dtype] = m[1:2048].mean().item()
    # measured: 1.4e-4 relative; nearest codes end 1.9 % low
    assert runs["8bit"] == pytest.approx(runs[None], rel=0.005)


def test_rounding_bits_are_one_hash_for_ints_numpy_and_torch():
    keys = [quantization.stream_key(seed, t, f) for seed, t, f in ((1, 1, 0), (2**31, 7, 3))]
    index = np.arange(0, 1 << 20, 4099, dtype=np.int64)
    for key in keys:
        in_numpy = quantization.rounding_bits(key, index)
        in_torch = quantization.rounding_bits(key, torch.from_numpy(index)).numpy()
        in_python = [quantization.rounding_bits(key, int(i)) for i in index]
        assert in_numpy.tolist() == in_torch.tolist() == in_python
        assert in_numpy.min() >= 0 and in_numpy.max() < 1 << 16
    # uniform enough: every 16th of the range within 20 % of its share
    bits = quantization.rounding_bits(keys[0], np.arange(1 << 16, dtype=np.int64))
    counts = np.bincount(bits >> 12, minlength=16)
    assert counts.min() > 0.8 * (1 << 12) and counts.max() < 1.2 * (1 << 12)


# ---------------------------------------------------------------- engines agree


@pytest.mark.parametrize("kind", COMPACT)
@pytest.mark.parametrize("name", STATEFUL)
def test_fused_and_foreach_match_per_tensor_bit_for_bit(name, kind, exact_sqrt):
    reference, ref_opt = _run(name, "per_tensor", COMPACT[kind])
    for impl in ("foreach", "fused"):
        params, opt = _run(name, impl, COMPACT[kind])
        for p, q, shape in zip(reference, params, SHAPES, strict=True):
            if q.numel() < quantization.MIN_ELEMENTS and impl == "fused":
                continue  # float32 state: the plain kernel multiplies by reciprocals (2 ulp)
            assert _same_bits(p, q), (impl, shape)
            assert _states_equal(ref_opt.state[p], opt.state[q]), (impl, shape)
        assert getattr(opt, "fallbacks", 0) == 0


@pytest.mark.parametrize("kind", COMPACT)
@pytest.mark.parametrize("name", STATEFUL)
def test_compact_state_matches_bit_for_bit_with_torchs_own_sqrt(name, kind):
    """Without the exact sqrt: every compact state that no sqrt feeds is identical (all but
    AdaDelta's s, which stores the squared step)."""
    reference, ref_opt = _run(name, "per_tensor", COMPACT[kind])
    params, opt = _run(name, "fused", COMPACT[kind])
    fed_by_sqrt = {"s"} if name == "AdaDelta" else set()
    for p, q in zip(reference[:2], params[:2], strict=True):
        a, b = ref_opt.state[p], opt.state[q]
        keys = [
            k for k in a if k not in fed_by_sqrt and k.removesuffix("_absmax") not in fed_by_sqrt
        ]
        assert _states_equal(a, b, keys)


@pytest.mark.parametrize("kind", COMPACT)
def test_fused_kernel_on_many_threads_matches(kind, exact_sqrt):
    """Threads share 8-bit blocks of a large tensor: the split must not change a bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        shapes = ((3 * quantization.BLOCK * 16 + 5,), (40_000,))
        ref, ref_opt = _run("Adam", "per_tensor", COMPACT[kind], steps=3, shapes=shapes)
        got, opt = _run("Adam", "fused", COMPACT[kind], steps=3, shapes=shapes)
    finally:
        torch.set_num_threads(threads)
    for p, q in zip(ref, got, strict=True):
        assert _same_bits(p, q)
        assert _states_equal(ref_opt.state[p], opt.state[q])


def test_kernel_encodes_edge_values_like_the_reference():
    """Momentum with beta=0, ema=False stores m = g: the kernel's encoder meets values on
    code boundaries, −0.0, denormals, blocks of zeros, and a NaN block."""
    bounds = torch.from_numpy(quantization.thresholds(signed=True))
    codes_ = torch.from_numpy(quantization.magnitudes(signed=True).copy())
    g = torch.zeros(5 * quantization.BLOCK)
    g[1 : bounds.numel() + 1] = bounds  # on the nearest encoder's edges (the absmax: 1)
    g[200 : 200 + bounds.numel()] = -bounds
    # on the stochastic encoder's edges: every magnitude, and one ulp either side
    at = 4 * quantization.BLOCK
    g[at] = 1.0
    for k, shifted in enumerate((codes_, codes_.nextafter(torch.tensor(0.0)),
                                 codes_.nextafter(torch.tensor(2.0)).clamp(max=1.0))):  # fmt: skip
        g[at + 1 + 130 * k : at + 1 + 130 * k + codes_.numel()] = shifted * (-1) ** k
    g[0] = 1.0
    g[300:400] = -0.0
    g[400:500] = 1e-40  # denormal
    g[quantization.BLOCK : quantization.BLOCK + 7] = -torch.tensor(
        [1, 0.5, 0.25, 0.1, 1e-6, 1e-7, 0]
    )
    g[3 * quantization.BLOCK] = float("nan")
    results = []
    for impl in ("per_tensor", "fused"):
        p = torch.zeros_like(g, requires_grad=True)
        opt = rt.Momentum([p], beta=0.0, ema=False, state_dtype="8bit", **IMPLEMENTATIONS[impl])
        p.grad = g.clone()
        opt.step()
        results.append(opt.state[p])
    assert _states_equal(*results)
    key = quantization.stream_key(results[1]["seed"], 1, 0)  # step 1, field m
    codes, absmax = compact.quantize(g, signed=True, key=key)
    assert _same_bits(results[1]["m_codes"], codes)
    assert _same_bits(results[1]["m_absmax"], absmax)


def test_rounding_bits_depend_on_the_position_not_on_torchs_generator():
    """Review finding: seeds drawn from torch's generator shifted the user's random stream
    and made DDP ranks seeded differently round differently. Now: same parameters and
    gradients, same bits, whatever torch.manual_seed says; each tensor its own seed."""
    results = []
    for torch_seed in (1234, 1235):
        torch.manual_seed(torch_seed)
        p = torch.ones(5000, requires_grad=True)
        opt = rt.Adam([p, torch.ones(5000, requires_grad=True)], state_dtype=torch.bfloat16)
        for step in range(3):
            for q in opt.param_groups[0]["params"]:
                q.grad = torch.full_like(q, 0.1 + step)
            opt.step()
        results.append(opt)
        after = torch.rand(())
        torch.manual_seed(torch_seed)
        assert torch.equal(after, torch.rand(()))  # the stream was not consumed
    a, b = ([o.state[q] for q in o.param_groups[0]["params"]] for o in results)
    assert [s["seed"] for s in a] == [s["seed"] for s in b]
    assert a[0]["seed"] != a[1]["seed"]
    assert all(_states_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("kind", COMPACT)
def test_compact_state_trains_like_float32(kind):
    """A least-squares problem: compact Adam ends within 5 % of float32's loss."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(256, 64, generator=generator)
    target = torch.randn(256, 64, generator=generator)
    losses = {}
    for state_dtype in (None, COMPACT[kind]):
        w = torch.zeros(64, 64, requires_grad=True)
        opt = rt.Adam([w], lr=0.01, state_dtype=state_dtype)
        for _ in range(300):
            opt.zero_grad()
            loss = ((a @ w - target) ** 2).mean()
            loss.backward()
            opt.step()
        losses[state_dtype] = loss.item()
    assert losses[COMPACT[kind]] <= 1.05 * losses[None], losses


# ---------------------------------------------------------------- checkpoints


def _roundtrip(state_dict):
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("impl", ["per_tensor", "fused"])
@pytest.mark.parametrize("kind", COMPACT)
@pytest.mark.parametrize("name", ["Adam", "AdaDelta", "NAdam", "NAG"])
def test_save_load_continue_is_bit_identical(name, kind, impl):
    straight, _ = _run(name, impl, COMPACT[kind], steps=6)
    params, opt = _run(name, impl, COMPACT[kind], steps=3)
    saved = _roundtrip(opt.state_dict())
    assert any(
        v.dtype in (torch.uint8, torch.bfloat16)
        for s in saved["state"].values()
        for v in s.values()
        if torch.is_tensor(v)
    )
    clones = [p.detach().clone().requires_grad_() for p in params]
    resumed = rt.OPTIMIZERS[name](clones, state_dtype=COMPACT[kind], **IMPLEMENTATIONS[impl])
    resumed.load_state_dict(saved)
    for i in range(3, 6):
        generator = torch.Generator().manual_seed(100 + i)
        for p in clones:
            p.grad = torch.randn(p.shape, generator=generator)
        resumed.step()
    for a, b in zip(straight, clones, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "source,target",
    [(None, "8bit"), ("8bit", None), (None, torch.bfloat16), ("8bit", torch.bfloat16)],
)
def test_loading_another_format_converts_within_the_bound(source, target):
    params, opt = _run("Adam", "per_tensor", source, steps=3)
    clone = [p.detach().clone().requires_grad_() for p in params]
    other = rt.Adam(clone, state_dtype=target)
    other.load_state_dict(_roundtrip(opt.state_dict()))
    assert other.param_groups[0]["state_dtype"] == target  # the optimizer's, not the file's
    for p, q in zip(params, clone, strict=True):
        if p.numel() < quantization.MIN_ELEMENTS:
            continue
        old, new = opt.state[p], other.state[q]
        assert storage.format_of(opt.spec, new) == storage.state_format(q, target)
        for name, signed in (("m", True), ("G", False)):
            before = storage.decode(opt.spec, old, name)
            after = storage.decode(other.spec, new, name)
            if target == "8bit":
                codes = quantization.SIGNED if signed else quantization.UNSIGNED
                bound = float(np.diff(codes.astype(np.float64)).max() / 2) * before.abs().max()
            elif target is torch.bfloat16:
                bound = 2**-8 * before.abs().max()
            else:
                bound = 0.0  # decoding is exact
            assert (after - before).abs().max() <= bound * (1 + 1e-6), name


def test_a_state_in_a_broken_format_is_refused_naming_it():
    params, opt = _run("Adam", "per_tensor", "8bit", steps=1)
    good = opt.state_dict()
    clone = [p.detach().clone().requires_grad_() for p in params]
    target = rt.Adam(clone, state_dtype="8bit")
    cases = {
        "lacks G_absmax": lambda s: s.pop("G_absmax"),
        "codes as float": lambda s: s.__setitem__("m_codes", s["m_codes"].float()),
        "short absmax": lambda s: s.__setitem__("m_absmax", s["m_absmax"][:1]),
    }
    messages = {
        "lacks G_absmax": r"keeps \['G_absmax', 'G_codes', 'm_absmax', 'm_codes', 'seed', "
        r"'step'\] in the 8bit format",
        "codes as float": r"m_codes must be a uint8 tensor of codes in the 8bit format, got a "
        "torch.float32 tensor",
        "short absmax": r"m_absmax has shape \(1,\); m_codes's 5000 elements need \(3,\)",
    }
    for case, damage in cases.items():
        broken = _roundtrip(good)
        damage(broken["state"][0])
        with pytest.raises(CheckpointError, match=messages[case]):
            target.load_state_dict(broken)
        assert not target.state  # nothing changed
    params, opt = _run("Adam", "per_tensor", torch.bfloat16, steps=1)
    broken = _roundtrip(opt.state_dict())
    broken["state"][0]["m"] = broken["state"][0]["m"].float()
    with pytest.raises(CheckpointError, match="bfloat16 tensor in the bfloat16-sr format"):
        rt.Adam(clone, state_dtype=torch.bfloat16).load_state_dict(broken)


# ---------------------------------------------------------------- conversions, refusals


def test_to_torch_decodes_and_from_torch_encodes():
    params, opt = _run("Adam", "per_tensor", "8bit", steps=2, eps_mode="outside")
    twin = rt.to_torch(opt)
    p = params[0]
    assert twin.state[p]["exp_avg"].dtype == torch.float32
    assert torch.equal(twin.state[p]["exp_avg"], storage.decode(opt.spec, opt.state[p], "m"))
    back = rt.from_torch(twin, state_dtype="8bit")
    assert torch.equal(back.state[p]["m_codes"], opt.state[p]["m_codes"])  # stable
    assert back.state_formats()["0.0"] == "8bit"


def test_sparse_gradients_with_compact_state_are_refused_before_anything_changes():
    table = torch.nn.Embedding(4096, 2, sparse=True)
    opt = rt.Adagrad(table.parameters(), state_dtype="8bit")
    table(torch.tensor([1, 2])).sum().backward()
    before = table.weight.detach().clone()
    with pytest.raises(
        RuntimeError, match=r"sparse gradients are not supported with state_dtype='8bit'"
    ):
        opt.step()
    assert torch.equal(table.weight, before) and not opt.state
    small = torch.nn.Embedding(10, 2, sparse=True)  # under MIN_ELEMENTS: float32 state, exact
    opt = rt.Adagrad(small.parameters(), state_dtype="8bit")
    small(torch.tensor([1])).sum().backward()
    opt.step()


@pytest.mark.parametrize("impl", ["per_tensor", "fused"])
def test_nonfinite_skip_stays_atomic_with_compact_state(impl):
    params, opt = _run("Adam", impl, "8bit", steps=2, nonfinite="skip")
    before = [
        {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()} for p in params
    ]
    values = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.ones_like(p)
    params[1].grad[0, 0] = float("nan")
    opt.step()
    assert opt.skipped_steps == 1
    for p, value, state in zip(params, values, before, strict=True):
        assert torch.equal(p, value) and _states_equal(opt.state[p], state)


@pytest.mark.parametrize("impl", ["per_tensor", "fused"])
def test_float64_parameters_with_compact_state(impl, exact_sqrt):
    """float64 parameters compute in float64; their compact state decodes to float32 values
    and new state is rounded to float32 before it is encoded."""
    shapes = ((5000,),)
    torch.set_default_dtype(torch.float64)
    try:
        ref, ref_opt = _run("Adam", "per_tensor", "8bit", shapes=shapes)
        got, opt = _run("Adam", impl, "8bit", shapes=shapes)
    finally:
        torch.set_default_dtype(torch.float32)
    assert ref[0].dtype == torch.float64 and opt.state_formats() == {"0.0": "8bit"}
    assert _states_equal(ref_opt.state[ref[0]], opt.state[got[0]])
    # torch's float64 sqrt is not correctly rounded either: the parameters agree to an ulp
    assert torch.allclose(ref[0], got[0], rtol=4e-16, atol=0)


# ---------------------------------------------------------------- review findings


@pytest.mark.parametrize("impl", ["per_tensor", "fused"])
def test_an_8bit_checkpoint_without_a_seed_loads_and_continues_alike(impl):
    """8-bit states saved before signed codes rounded stochastically have no seed: they
    load, get the seed of their position, and every engine continues alike."""
    params, opt = _run("Adam", "per_tensor", "8bit", steps=2, min_compact_size=0)
    saved = io.BytesIO()
    torch.save(opt.state_dict(), saved)
    results = []
    for engine in ("per_tensor", impl):
        saved.seek(0)
        old = torch.load(saved, weights_only=True)
        for entry in old["state"].values():
            del entry["seed"]
        twin = [p.detach().clone().requires_grad_() for p in params]
        other = rt.Adam(twin, state_dtype="8bit", min_compact_size=0, **IMPLEMENTATIONS[engine])
        other.load_state_dict(old)
        assert other.state[twin[0]]["seed"] == opt.state[params[0]]["seed"]
        for p in twin:
            p.grad = torch.ones_like(p)
        other.step()
        results.append(other.state[twin[0]])
    assert _states_equal(*results)
    adagrad = _run("Adagrad", "per_tensor", "8bit", steps=1, min_compact_size=0)[1]
    assert "seed" not in adagrad.state_dict()["state"][0]  # unsigned codes draw no bits


def test_a_checkpoint_loaded_in_place_by_another_format_misses_keys_not_values():
    """torch.distributed.checkpoint loads into the current optimizer's tensors by key: 8-bit
    codes kept under ``m`` would have been read as float32 values 0..255. They are kept
    under ``m_codes``, which a float32 optimizer does not have."""
    _, opt = _run("Adam", "per_tensor", "8bit", steps=1)
    saved = set(opt.state_dict()["state"][0])
    _, plain = _run("Adam", "per_tensor", None, steps=1)
    wanted = set(plain.state_dict()["state"][0])
    assert saved == {"step", "seed", "m_codes", "m_absmax", "G_codes", "G_absmax"}
    assert wanted - saved == {"m", "G"}  # an in-place load finds nothing for them


def test_a_swapped_absmax_tensor_is_noticed_by_the_fused_plan():
    """``.data =`` changes a tensor's address without a new state version: the fused plan
    checks the block maxima's addresses, not only the codes'."""
    ref, ref_opt = _run("Adam", "per_tensor", "8bit", steps=2)
    got, opt = _run("Adam", "fused", "8bit", steps=2)
    for o in (ref_opt, opt):
        for state in o.state.values():
            if "m_absmax" in state:
                state["m_absmax"].data = state["m_absmax"].data.clone()
    for params, o in ((ref, ref_opt), (got, opt)):
        for i in range(2, 5):
            generator = torch.Generator().manual_seed(100 + i)
            for p in params:
                p.grad = torch.randn(p.shape, generator=generator)
            o.step()
    for p, q in zip(ref[:2], got[:2], strict=True):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)
        assert torch.equal(ref_opt.state[p]["m_absmax"], opt.state[q]["m_absmax"])


def test_sparse_refusal_follows_the_state_a_parameter_already_has():
    table = torch.nn.Embedding(4096, 2, sparse=False)
    opt = rt.Adagrad(table.parameters(), state_dtype="8bit")
    table(torch.tensor([1, 2])).sum().backward()
    opt.step()  # dense: the state is 8-bit now
    opt.param_groups[0]["state_dtype"] = None  # a new state would be float32
    table.weight.grad = torch.sparse_coo_tensor(
        torch.tensor([[1]]), torch.ones(1, 2), table.weight.shape, check_invariants=True
    )
    before = {k: v.clone() for k, v in opt.state[table.weight].items() if torch.is_tensor(v)}
    with pytest.raises(RuntimeError, match="state format '8bit'"):
        opt.step()
    after = opt.state[table.weight]
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_an_edited_state_dtype_is_checked_when_a_state_is_created():
    p = torch.zeros(5000, requires_grad=True)
    opt = rt.Adam([p], state_dtype="8bit")
    opt.param_groups[0]["state_dtype"] = torch.float16
    p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match=r"invalid state_dtype=torch.float16; valid: None"):
        opt.step()


def test_a_plain_checkpoint_with_mixed_dtypes_is_converted_to_the_format():
    params, opt = _run("Adam", "per_tensor", None, steps=2)
    saved = _roundtrip(opt.state_dict())
    saved["state"][0]["G"] = saved["state"][0]["G"].half()
    clones = [p.detach().clone().requires_grad_() for p in params]
    other = rt.Adam(clones, fused=True)
    other.load_state_dict(saved)
    assert other.state[clones[0]]["G"].dtype == torch.float32
    for p in clones:
        p.grad = torch.ones_like(p)
    other.step()
    assert other.fallbacks == 0


def test_dtensor_parameters_refuse_compact_state_before_loading(tmp_path):
    """FSDP2's DTensors cannot take compact state: load_state_dict says so before anything
    changes (it used to fail half-way, leaving internal wrappers in the state)."""
    import torch.distributed as dist
    from torch.distributed.tensor import DeviceMesh, distribute_tensor

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        mesh = DeviceMesh("cpu", [0])
        plain = torch.nn.Parameter(distribute_tensor(torch.randn(64, 80), mesh))
        source = rt.Adam([plain])
        plain.grad = distribute_tensor(torch.ones(64, 80), mesh)
        source.step()
        target_param = torch.nn.Parameter(distribute_tensor(torch.randn(64, 80), mesh))
        target = rt.Adam([target_param], state_dtype="8bit")
        with pytest.raises(
            CheckpointError, match="state_dtype='8bit' is not supported for DTensor"
        ):
            target.load_state_dict(source.state_dict())
        assert not target.state
    finally:
        dist.destroy_process_group()
