"""Compact storage formats for optimizer state, defined once for every backend.

Two formats, both *storage*: the rule computes in float32 as always; a state tensor is
widened when loaded and rounded when stored.

``"bfloat16"`` (stochastic rounding)
    A float32 value ``x`` is stored as the upper 16 bits of ``bits(x) + r``, where ``r`` is
    16 random bits: it rounds up with probability equal to the fraction it drops, so small
    updates to a large average are not lost on average (Zamirai et al., "Revisiting
    BFloat16 Training"). The random bits are a hash, not a generator's sequence, so every
    backend draws the same ones: ``r = rounding_bits(stream_key(seed, t, field), e)`` for
    element ``e`` of the tensor, ``t`` the step, ``field`` the state's position in the
    rule's state and ``seed`` a function of the parameter's position in the optimizer
    (:func:`ravine.torch.storage.rounding_seed`: torch's generator is not touched, and
    DDP replicas round alike; the seed lives in the state, so a checkpoint resumes
    exactly).

``"8bit"`` (block-wise dynamic quantization, Dettmers et al. 2021)
    A state tensor is cut into blocks of :data:`BLOCK` elements; each block stores one
    float32 ``absmax = max |x|`` and per element one byte, the index of a code for
    ``y = x / absmax`` (the nearest, or for signed state one of the two around it, below).
    The codes are a *dynamic* map (:func:`dynamic_map`): each
    decade below 1 gets its own linear grid, so values far below their block's largest keep
    some precision (relative error ≤ 6.6 % in the top decade, roughly doubling with each
    decade down) instead of rounding to 0. Signed state (momentum) uses a signed
    map, state that is never negative (sums and averages of squares) an unsigned one with
    twice the resolution. Unsigned codes round to the nearest (a tie goes to the smaller
    magnitude): the number of :func:`thresholds` below ``|y|``; the kernels find it with
    one table lookup
    (:func:`prefix_table`) instead of a search. Signed codes round *stochastically*
    between the two magnitudes around ``|y|``, up with probability equal to the distance
    covered, drawing the same hashed bits as bfloat16 (:func:`round_up`): a momentum
    buffer that adds 1 % of a gradient per step moves on average as in float32, where
    nearest rounding would keep it on its code (measured: Momentum β = 0.99 on the deep
    autoencoder ends at 0.0237 ± 0.0036 with stochastic codes, 0.0303 ± 0.0058 with
    nearest ones, 0.0241 ± 0.0035 in float32). The floor magnitude is found by
    :func:`floor_table`, its distance to the next in :func:`gaps`.

Both the torch reference (:mod:`ravine.torch.storage`) and the generated C kernels
(:mod:`ravine.codegen.c`) read the numbers below; the parity tests hold them to the same
bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BLOCK = 2048
"""Elements per 8-bit block (Dettmers et al.'s block size); one float32 absmax each."""

MIN_ELEMENTS = 4096
"""State tensors of parameters smaller than this keep full precision (as bitsandbytes'
``min_8bit_size``): their state is a rounding error of the model's memory, and small
tensors (biases, norms' scales) are where precision matters most."""

MASK = 0xFFFFFFFF
_MIX = 0x45D9F3B
"""The multiplier of :func:`mix32`: below 2³¹, so a product with a 32-bit value fits a
signed 64-bit integer (torch has no unsigned 32-bit multiply)."""


def mix32(x: Any) -> Any:
    """A 32-bit integer hash (xor-shift-multiply, three rounds); ``x`` in [0, 2³²).

    Works unchanged on Python ints, NumPy and torch int64 arrays, and is written out in C
    by the kernel generator: every product is masked back to 32 bits, as C's ``uint32_t``
    arithmetic wraps.
    """
    x = x ^ (x >> 16)
    x = (x * _MIX) & MASK
    x = x ^ (x >> 16)
    x = (x * _MIX) & MASK
    return x ^ (x >> 16)


def stream_key(seed: Any, t: int, field: int) -> Any:
    """The key of one state tensor's rounding bits at step ``t``: ``field`` is the state's
    index among the rule's array state, ``seed`` the tensor's (an int, or an int64 array of
    many tensors' seeds)."""
    return mix32(seed ^ mix32(((t << 2) | field) & MASK))


SPREAD = 0x61C88647
"""2³² · (1 − 1/φ), odd and below 2³¹: multiplying by it spreads neighbouring indices
evenly over the 32 bits (a Weyl sequence), and it is a bijection on 32-bit values."""


def rounding_bits(key: Any, index: Any) -> Any:
    """16 random bits for element ``index`` of the tensor whose stream key is ``key``: the
    top half of ``(index ^ key) · SPREAD`` (mod 2³²). The key is a full hash of the seed and
    the step, so for any element the bits are uniform over steps; within a step one
    multiply per element spreads them evenly (the kernels pay one vector multiply)."""
    return (((index & MASK) ^ key) * SPREAD & MASK) >> 16


def dynamic_map(signed: bool) -> np.ndarray:
    """The 8-bit code values, sorted, as float32 in [-1, 1] (signed) or [0, 1].

    Dynamic tree quantization: after the sign bit (signed map only), a run of ``E`` zero
    bits picks the decade ``(10^-(E+1), 10^-E]`` and the remaining bits a point on that
    decade's linear grid, so decade ``E`` gets ``2^(bits − 1 − E)`` codes. Each grid ends
    at the decade's top, so 1 (an element equal to its block's absmax) is exact. The
    unsigned map has 255 positive codes and 0; the signed map 127 of each sign and 0 (its
    256th byte, a second zero, is never stored).
    """
    bits = 7 if signed else 8
    magnitudes = [
        10.0**-decade * np.linspace(0.1, 1.0, 2 ** (bits - 1 - decade) + 1)[1:]
        for decade in range(bits)
    ]
    positive = np.concatenate(magnitudes)
    values = np.concatenate([-positive, [0.0], positive]) if signed else np.append(positive, 0)
    return np.sort(values).astype(np.float32)


SIGNED = dynamic_map(signed=True)
UNSIGNED = dynamic_map(signed=False)


def magnitudes(signed: bool) -> np.ndarray:
    """The map's codes from 0 up (the signed map's negative half mirrors them)."""
    codes = SIGNED if signed else UNSIGNED
    return codes[len(codes) // 2 :] if signed else codes


def thresholds(signed: bool) -> np.ndarray:
    """Midpoints between consecutive :func:`magnitudes`, rounded to float32: ``|y|`` takes
    the magnitude whose index is the number of thresholds below it (a tie goes to the
    smaller magnitude)."""
    wide = magnitudes(signed).astype(np.float64)
    return ((wide[:-1] + wide[1:]) / 2).astype(np.float32)


def prefix_table(signed: bool) -> tuple[int, np.ndarray]:
    """The kernels' encoder table: ``(shift, table)`` such that a magnitude in [0, 1] with
    float bits ``u`` has index ``(e & 0xFF) + ((u & low) > (e >> 8))`` where
    ``e = table[u >> shift]`` and ``low = 2^shift − 1``: ``e``'s low byte counts the
    thresholds below every float of that prefix, the rest holds the low bits of the one
    threshold inside it (``2^shift`` if none). ``shift`` is the largest that leaves at most
    one threshold per prefix (17 signed, 16 unsigned), so the table stays small (32 KiB,
    64 KiB) and one gather finds a code."""
    return _prefix(thresholds(signed))


def _prefix(boundaries: np.ndarray) -> tuple[int, np.ndarray]:
    """The table of :func:`prefix_table` over any sorted positive float32 boundaries."""
    bits = boundaries.view(np.uint32).astype(np.int64)
    shift = max(s for s in range(8, 24) if np.unique(bits >> s).size == bits.size)
    prefixes = np.arange((0x3F800000 >> shift) + 1, dtype=np.int64)
    below = np.searchsorted(bits, prefixes << shift, side="left")
    inside = np.full(prefixes.size, 1 << shift, dtype=np.int64)
    inside[bits >> shift] = bits & ((1 << shift) - 1)
    return shift, (below | (inside << 8)).astype(np.int32)


def floor_table(signed: bool) -> tuple[int, np.ndarray]:
    """:func:`prefix_table`'s layout for the *floor*: the index of the largest of
    :func:`magnitudes` at or below ``|y|`` is ``(e & 0xFF) + ((u & low) >= (e >> 8))``
    (``>=``: a magnitude itself has its own index)."""
    return _prefix(magnitudes(signed)[1:])


def gaps(signed: bool) -> np.ndarray:
    """From each of :func:`magnitudes` to the next, in float32 (0 after the last, 1)."""
    wide = magnitudes(signed)
    return np.append(wide[1:] - wide[:-1], np.float32(0)).astype(np.float32)


def round_up(distance: Any, gap: Any, bits: Any) -> Any:
    """Whether a stochastically rounded magnitude takes the next code: ``distance`` above
    the floor magnitude, ``gap`` to the next (float32 arrays), ``bits`` from
    :func:`rounding_bits` (as float32): up with probability ``distance / gap``, written
    without a division so that every backend rounds it alike:
    ``distance · 2¹⁶ > bits · gap`` in float32 (never up from a code's own value)."""
    return distance * 65536.0 > bits * gap


def blocks(n: int) -> int:
    """Number of 8-bit blocks (absmax values) of a state tensor of ``n`` elements."""
    return -(-n // BLOCK)
