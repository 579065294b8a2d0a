"""The compact state formats of :mod:`ravine.quantization` in torch: the reference codec.

Every engine that does not generate its own loads and stores (per-tensor, foreach, the
kernels' fallbacks, checkpoint conversion) encodes and decodes here; the generated C
kernels do the same arithmetic element by element and are tested to produce the same bits.
"""

from __future__ import annotations

import functools

import torch

from .. import quantization
from ..quantization import BLOCK, MASK


@functools.cache
def _values(signed: bool, device: torch.device) -> torch.Tensor:
    """The code values, padded to 256 (the signed map's unused byte decodes to 0)."""
    codes = quantization.SIGNED if signed else quantization.UNSIGNED
    return torch.nn.functional.pad(torch.from_numpy(codes), (0, 256 - len(codes))).to(device)


@functools.cache
def _thresholds(signed: bool, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(quantization.thresholds(signed)).to(device)


def encode(y: torch.Tensor, signed: bool) -> torch.Tensor:
    """The code index (int64) of each ``y`` in [−1, 1]: the number of thresholds below
    ``|y|``, on the side of ``y``'s sign (NaN: the code 0)."""
    return _index(y, torch.bucketize(y.abs(), _thresholds(signed, y.device)), signed)


def _index(y: torch.Tensor, magnitude: torch.Tensor, signed: bool) -> torch.Tensor:
    """The code index of ``magnitude``'s index on ``y``'s side of the map (NaN: code 0)."""
    if signed:
        zero = len(quantization.SIGNED) // 2
        return torch.where(y.isnan(), zero, torch.where(y < 0, zero - magnitude, zero + magnitude))
    return torch.where(y.isnan(), 0, magnitude)


@functools.cache
def _floors(signed: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The magnitudes, the boundaries of their floors (all but 0) and the gaps."""
    magnitudes = torch.from_numpy(quantization.magnitudes(signed).copy()).to(device)
    gaps = torch.from_numpy(quantization.gaps(signed)).to(device)
    return magnitudes, magnitudes[1:].contiguous(), gaps


def encode_stochastic(y: torch.Tensor, signed: bool, key: int) -> torch.Tensor:
    """:func:`encode` with the magnitude rounded stochastically (see
    :func:`ravine.quantization.round_up`) with the bits of stream ``key``: element ``e``
    of ``y`` (row-major) draws ``rounding_bits(key, e)``."""
    magnitudes, boundaries, gaps = _floors(signed, y.device)
    a = y.abs()
    floor = torch.bucketize(a, boundaries, right=True)  # how many are ≤ a
    index = torch.arange(y.numel(), dtype=torch.int64, device=y.device).view(y.shape)
    bits = quantization.rounding_bits(key, index).to(torch.float32)
    distance = a - magnitudes[floor]
    magnitude = floor + quantization.round_up(distance, gaps[floor], bits).long()
    return _index(y, magnitude, signed)


def _blocked(flat: torch.Tensor) -> torch.Tensor:
    """``flat`` zero-padded to whole blocks, one block per row."""
    count = quantization.blocks(flat.numel())
    return torch.nn.functional.pad(flat, (0, count * BLOCK - flat.numel())).view(count, BLOCK)


def quantize(
    x: torch.Tensor, signed: bool, key: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """8-bit codes of ``x`` (uint8, ``x``'s shape) and each block's float32 absmax.

    ``y = x / absmax`` in float32 takes the nearest code (:func:`encode`), or with a
    ``key`` one of the two around it, stochastically (:func:`encode_stochastic`);
    a block holding NaN (its absmax is then NaN, the canonical one) or only zeros stores the
    code 0, and decodes to NaN or 0 as its absmax says.
    """
    flat = x.reshape(-1).float()
    blocks = _blocked(flat)
    absmax = blocks.abs().amax(dim=1)
    absmax = torch.where(absmax.isnan(), float("nan"), absmax)
    y = blocks / absmax[:, None]
    index = encode(y, signed) if key is None else encode_stochastic(y, signed, key)
    codes = index.to(torch.uint8).reshape(-1)[: flat.numel()].view(x.shape)
    return codes, absmax


def dequantize(codes: torch.Tensor, absmax: torch.Tensor, signed: bool) -> torch.Tensor:
    """The float32 values that ``codes`` and their blocks' ``absmax`` stand for."""
    flat = _values(signed, codes.device)[codes.reshape(-1).long()]
    decoded = _blocked(flat) * absmax[:, None]
    return decoded.reshape(-1)[: codes.numel()].view(codes.shape)


def round_stochastic(x: torch.Tensor, key: int) -> torch.Tensor:
    """``x`` rounded to bfloat16 stochastically with the bits of stream ``key``.

    Element ``e`` (in row-major order) becomes the upper half of ``bits(x) + r`` with
    ``r = rounding_bits(key, e)``; NaN stays NaN (0x7FC0), ±Inf stays ±Inf, and a finite
    value within 2⁻⁸ of bfloat16's largest may round up to Inf, as nearest rounding would.
    """
    flat = x.reshape(-1).float()
    index = torch.arange(flat.numel(), dtype=torch.int64, device=x.device)
    noise = quantization.rounding_bits(key, index)
    upper = ((flat.view(torch.int32).long() & MASK) + noise) >> 16
    upper = torch.where(flat.isnan(), 0x7FC0, upper)
    signed16 = torch.where(upper >= 0x8000, upper - 0x10000, upper)
    return signed16.to(torch.int16).view(torch.bfloat16).view(x.shape)
