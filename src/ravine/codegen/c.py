"""C source for a traced :class:`~ravine.codegen.program.Program`: one pass over memory.

Two functions are generated, both over many tensors at once (pointer tables, one row per
stream, a prefix sum of element counts), split evenly across OpenMP threads:

* ``ravine_update`` loads every stream of an element, evaluates the traced expressions
  in registers and stores the outputs in place — no temporaries, each byte moved once;
* ``ravine_reduce`` sums the squares of the traced reduction inputs (normalized GD's
  norm), one partial sum per thread, added in thread order so results are reproducible.

Arithmetic runs in the compute type the eager paths use (double for float64, float
otherwise; 16-bit storage is widened on load and rounded to nearest-even on store, as
torch's casts do); FMA contraction is disabled so each operation rounds as written, with
one exception: an element divided by a per-step scalar (Adam's and NAdam's bias
corrections, normalized GD's norm) is multiplied by the scalar's reciprocal, computed once
in double (:func:`~ravine.codegen.program.divide_by_reciprocals`).

What is C here is syntax (:data:`STORAGE`, :data:`SYNTAX`) and the loop skeleton; the order
of operations, their names and the calling convention come from
:meth:`~ravine.codegen.program.Program.schedule`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from .. import quantization
from .program import FORMATS, INFIX, Program, Schedule

_PRELUDE = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <omp.h>

static inline float bf16_load(uint16_t h) {
    uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f;
}
static inline uint16_t bf16_store(float f) {  /* round to nearest even, as c10::BFloat16 */
    uint32_t u; memcpy(&u, &f, 4);
    if (f != f) return 0x7FC0;
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

static inline uint16_t bf16_store_sr(float f, uint32_t key, int64_t e) {
    /* stochastic rounding with ravine.quantization.rounding_bits(key, e) (SPREAD) */
    uint32_t u; memcpy(&u, &f, 4);
    if (f != f) return 0x7FC0;
    return (uint16_t)((u + ((((uint32_t)e ^ key) * SPREADu) >> 16)) >> 16);
}

/* [lo, hi) of the flattened element range for this thread; k = first tensor in it */
static inline void span(int64_t total, int64_t* lo, int64_t* hi) {
    int t = omp_get_thread_num(), n = omp_get_num_threads();
    *lo = total / n * t + (t < total % n ? t : total % n);
    *hi = *lo + total / n + (t < total % n ? 1 : 0);
}
static inline int64_t first_tensor(const int64_t* offsets, int64_t n, int64_t at) {
    int64_t a = 0, b = n;  /* largest k with offsets[k] <= at */
    while (b - a > 1) { int64_t m = (a + b) / 2; if (offsets[m] <= at) a = m; else b = m; }
    return a;
}
"""
_PRELUDE = _PRELUDE.replace("SPREAD", hex(quantization.SPREAD))  # the one constant


class Format(NamedTuple):
    """How a storage format is held and widened in C."""

    storage: str
    """The C type of a stored element."""
    load: str
    """Widening an element ``{0}`` to the compute type ``{1}``."""
    store: str
    """Rounding a compute-type value ``{0}`` to storage of type ``{1}``."""


STORAGE = {
    "float64": Format("double", "({1})({0})", "({1})({0})"),
    "float32": Format("float", "({1})({0})", "({1})({0})"),
    "bfloat16": Format("uint16_t", "bf16_load({0})", "bf16_store({0})"),
    "float16": Format("_Float16", "({1})({0})", "({1})({0})"),
    # compact formats (ravine.quantization): the stream's index {2} names its key or absmax
    "bfloat16-sr": Format("uint16_t", "bf16_load({0})", "bf16_store_sr((float)({0}), key{2}, e)"),
    "8bit-signed": Format("uint8_t", "", "(float)({0})"),
    "8bit-unsigned": Format("uint8_t", "", "(float)({0})"),
}
"""Each of :data:`ravine.codegen.program.FORMATS` in C. 8-bit streams are decoded into and
encoded from a block's float32 buffer (see :func:`_compact_update`): their store only
rounds to float32."""

COMPUTE = {"float64": "double", "float32": "float"}
"""C type of each compute precision."""

SYNTAX = {
    **INFIX,
    "sqrt": "sqrt{f}({0})",
    # max(x, lo), NaN propagating like torch.clamp
    "floor": "(({0} != {0}) || {0} > {1}) ? {0} : {1}",
}
"""One C expression per traced operation (``{f}``: the float suffix of math functions)."""


def _const(value: float, ctype: str) -> str:
    if value != value:
        return f"(({ctype})NAN)"
    if value in (float("inf"), float("-inf")):
        return f"(({ctype})({'-' if value < 0 else ''}INFINITY))"
    return f"(({ctype}){value!r})"


def _statements(schedule: Schedule, ctype: str) -> tuple[list[str], list[str]]:
    """The per-call header (scalars, reciprocals) and the per-element body in C."""
    header = [f"const {ctype} s{i} = ({ctype})sc[{i}];" for i in range(schedule.scalars)]
    # in double, then rounded once: x * r{i} is within two ulps of x / s{i} (measured)
    header += [f"const {ctype} r{i} = ({ctype})(1.0 / sc[{i}]);" for i in schedule.reciprocals]
    suffix = "" if ctype == "double" else "f"
    body = []
    for step in schedule.body:
        if step.op not in SYNTAX:
            raise ValueError(f"no C for operation {step.op!r}")
        operands = [_const(o, ctype) if isinstance(o, float) else o for o in step.operands]
        body.append(f"{ctype} {step.name} = {SYNTAX[step.op].format(*operands, f=suffix)};")
    return header, body


LANES = 64
"""Partial sums per thread in a reduction: independent lanes let the compiler vectorize a
sum it may not reorder, and keep the result reproducible for a given thread count."""
BLOCKS = 256
"""Lanes sum in the compute type for this many blocks, then flush into double totals."""


def _loop(
    body: list[str],
    header: list[str],
    formats: list[str],
    ctype: str,
    lanes: int = 1,
    block: tuple[list[str], list[str]] = ([], []),
) -> list[str]:
    """The thread's share of the elements, tensor by tensor; ``body`` sees element ``e`` of
    stream k loaded into ``in{k}`` (``formats[k]``: its storage) and, in a reduction, its
    lane ``j``."""
    lines = [
        "int64_t total = offsets[n], lo, hi;",
        "span(total, &lo, &hi);",
        "for (int64_t k = first_tensor(offsets, n, lo); k < n && offsets[k] < hi; ++k) {",
        "    int64_t a = (lo > offsets[k] ? lo : offsets[k]) - offsets[k];",
        "    int64_t b = (hi < offsets[k + 1] ? hi : offsets[k + 1]) - offsets[k];",
    ]
    for i, name in enumerate(formats):
        stype = STORAGE[name].storage
        lines.append(f"    {stype}* restrict x{i} = ({stype}*)ptrs[{i} * n + k];")
    lines += [f"    {line}" for line in header]
    element = [
        f"{ctype} in{i} = {STORAGE[name].load.format(f'x{i}[e]', ctype)};"
        for i, name in enumerate(formats)
    ]
    element += body
    if lanes == 1:
        lines.append("    for (int64_t i = a; i < b; ++i) {")
        lines.append("        const int64_t e = i;")
        lines += [f"        {line}" for line in element]
        lines += ["    }", "}"]
        return lines
    # element j of a block of `lanes` goes to lane j; `block` opens and flushes the lanes
    opening, closing = block
    lines += [
        "    int64_t i = a;",
        f"    while (b - i >= {lanes}) {{",
        f"        int64_t whole = (b - i) / {lanes};",
        f"        int64_t stop = i + {lanes} * (whole < {BLOCKS} ? whole : {BLOCKS});",
        *(f"        {line}" for line in opening),
        f"        for (; i < stop; i += {lanes}) {{",
        f"            for (int j = 0; j < {lanes}; ++j) {{",
        "                const int64_t e = i + j;",
        *(f"                {line}" for line in element),
        "            }",
        "        }",
        *(f"        {line}" for line in closing),
        "    }",
        *(f"    {line}" for line in opening),
        "    for (const int j = 0; i < b; ++i) {  /* the tail, into lane 0 */",
        "        const int64_t e = i;",
        *(f"        {line}" for line in element),
        "    }",
        *(f"    {line}" for line in closing),
        "}",
    ]
    return lines


BLOCKED = {"8bit-signed": "S", "8bit-unsigned": "U"}
"""Block-wise formats → the suffix of their code tables in C."""
STOCHASTIC = ("bfloat16-sr", "8bit-signed")
"""Formats that round with :func:`~ravine.quantization.rounding_bits` (a key row each)."""
_MAPS = {"S": quantization.SIGNED, "U": quantization.UNSIGNED}


def extra_rows(program: Program, formats: Mapping[str, str]) -> list[tuple[str, str]]:
    """Pointer-table rows after the streams' (calling convention of compact formats):
    ``("absmax", stream)``, the address of each tensor's float32 block maxima, per 8-bit
    stream; then ``("key", stream)``, this step's
    :func:`~ravine.quantization.stream_key` of each tensor as an integer, per
    stochastically rounded stream (bfloat16, and signed 8-bit codes)."""
    arrays = program.arrays
    rows = [("absmax", name) for name in arrays if formats[name] in BLOCKED]
    return rows + [("key", name) for name in arrays if formats[name] in STOCHASTIC]


def _tables(suffixes: set[str]) -> list[str]:
    """Per 8-bit map: its code values (decoding is a lookup) and its encoder, branch-free
    so that the loop vectorizes. Unsigned (``U``): the nearest code, ``|y|``'s index in
    :func:`ravine.quantization.prefix_table` (one gather). Signed (``S``): stochastic,
    the floor magnitude's index in :func:`~ravine.quantization.floor_table`, then one up
    if :func:`~ravine.quantization.round_up` says so with element ``e``'s rounding bits
    (three gathers); then the sign."""
    lines = []
    for suffix in sorted(suffixes):
        signed = suffix == "S"
        codes = _MAPS[suffix]
        shift, table = (quantization.floor_table if signed else quantization.prefix_table)(signed)
        padded = [*map(float, codes), *[0.0] * (256 - len(codes))]
        zero = len(codes) // 2 if signed else 0
        sign = f"y < 0.0f ? {zero} - m : {zero} + m" if signed else "m"
        low = f"(int32_t)(u & {(1 << shift) - 1}u)"
        lines += [
            f"static const float CODES_{suffix}[256] = {{{', '.join(map(_hex, padded))}}};",
            f"static const int32_t PREFIX_{suffix}[{table.size}] = {{{_runs(table)}}};",
        ]
        if signed:
            magnitudes, gaps = quantization.magnitudes(True), quantization.gaps(True)
            lines += [
                f"static const float MAG_S[{magnitudes.size}] = "
                f"{{{', '.join(_hex(float(v)) for v in magnitudes)}}};",
                f"static const float GAP_S[{gaps.size}] = "
                f"{{{', '.join(_hex(float(v)) for v in gaps)}}};",
                "static inline uint8_t encode_S(float y, uint32_t key, int64_t e) {",
            ]
        else:
            lines.append(f"static inline uint8_t encode_{suffix}(float y) {{")
        lines += [
            "    uint32_t u; memcpy(&u, &y, 4); u &= 0x7FFFFFFFu;",
            f"    const uint32_t h = (u >> {shift}) < {table.size - 1} ? (u >> {shift}) : "
            f"{table.size - 1};",
            f"    const int32_t p = PREFIX_{suffix}[h];",
        ]
        if signed:
            lines += [
                f"    int32_t m = (p & 0xFF) + ({low} >= (p >> 8));",
                "    float a; memcpy(&a, &u, 4);",
                "    const float bits = (float)((((uint32_t)e ^ key) * SPREADu) >> 16);",
                "    m += (a - MAG_S[m]) * 65536.0f > bits * GAP_S[m];",
            ]
        else:
            lines.append(f"    const int32_t m = (p & 0xFF) + ({low} > (p >> 8));")
        lines += [f"    return y != y ? {zero} : (uint8_t)({sign});", "}"]
    return [line.replace("SPREAD", hex(quantization.SPREAD)) for line in lines]


def _runs(table: object) -> str:
    """An integer table as a C initializer, short: most entries repeat their neighbour."""
    return ",".join(map(str, table.tolist()))  # type: ignore[attr-defined]


def _hex(value: float) -> str:
    """A float32 value as an exact C literal."""
    return f"{value.hex()}f" if value else "0.0f"


def _compact_update(
    program: Program, formats: list[str], ctype: str, schedule: Schedule
) -> list[str]:
    """The body of ``ravine_update`` over compact streams. Threads share whole 8-bit
    blocks; each block goes through four simple loops the compiler vectorizes: decode the
    8-bit streams into float32 buffers (with the block's old absmax), update (plain and
    stochastically rounded streams stored at once, 8-bit ones back into their buffers),
    the new absmax (an integer max of the magnitudes' bits: for floats that are not NaN
    it orders as their values do, and any NaN makes it the canonical NaN), then encode."""
    arrays = program.arrays
    streams = {name: i for i, name in enumerate(arrays)}
    named = dict(zip(arrays, formats, strict=True))
    rows = {entry: len(arrays) + r for r, entry in enumerate(extra_rows(program, named))}
    blocked = [i for i, f in enumerate(formats) if f in BLOCKED]
    header, body = _statements(schedule, ctype)
    b = quantization.BLOCK
    lines = [f"float buf{i}[{b}];" for i in blocked]
    lines += [
        "int64_t blocks = 0, lo, hi, first = 0;",
        f"for (int64_t k = 0; k < n; ++k) blocks += (offsets[k + 1] - offsets[k] + {b - 1}) / {b};",
        "span(blocks, &lo, &hi);",
        "for (int64_t k = 0; k < n && first < hi; ++k) {",
        "    const int64_t count = offsets[k + 1] - offsets[k];",
        f"    const int64_t nb = (count + {b - 1}) / {b};",
        "    const int64_t b0 = (lo > first ? lo : first) - first;",
        "    const int64_t b1 = (hi < first + nb ? hi : first + nb) - first;",
        "    first += nb;",
        "    if (b0 >= b1) continue;",
    ]
    for i, name in enumerate(formats):
        stype = STORAGE[name].storage
        lines.append(f"    {stype}* restrict x{i} = ({stype}*)ptrs[{i} * n + k];")
        if name in BLOCKED:
            row = rows["absmax", arrays[i]]
            lines.append(f"    float* restrict a{i} = (float*)ptrs[{row} * n + k];")
        if name in STOCHASTIC:
            row = rows["key", arrays[i]]
            lines.append(
                f"    const uint32_t key{i} = (uint32_t)((const int64_t*)ptrs)[{row} * n + k];"
            )
    lines += [f"    {line}" for line in header]
    lines += [
        "    for (int64_t blk = b0; blk < b1; ++blk) {",
        f"        const int64_t start = blk * {b};",
        f"        const int64_t len = start + {b} < count ? {b} : count - start;",
    ]
    for i in blocked:
        table = f"CODES_{BLOCKED[formats[i]]}"
        lines += [
            f"        const float am{i} = a{i}[blk];",
            "        for (int64_t l = 0; l < len; ++l)",
            f"            buf{i}[l] = {table}[x{i}[start + l]] * am{i};",
        ]
    lines.append("        for (int64_t l = 0; l < len; ++l) {")
    lines.append("            const int64_t e = start + l;")
    for i, name in enumerate(formats):
        if name in BLOCKED:
            lines.append(f"            {ctype} in{i} = ({ctype})buf{i}[l];")
        else:
            lines.append(
                f"            {ctype} in{i} = {STORAGE[name].load.format(f'x{i}[e]', ctype, i)};"
            )
    lines += [f"            {line}" for line in body]
    for name, value in schedule.results:
        i = streams[name]
        format_ = STORAGE[formats[i]]
        stored = format_.store.format(value, format_.storage, i)
        target = f"buf{i}[l]" if formats[i] in BLOCKED else f"x{i}[e]"
        lines.append(f"            {target} = {stored};")
    lines.append("        }")
    for i in blocked:
        suffix = BLOCKED[formats[i]]
        extra = f", key{i}, start + l" if formats[i] in STOCHASTIC else ""
        lines += [
            f"        uint32_t most{i} = 0;",
            "        for (int64_t l = 0; l < len; ++l) {",
            f"            uint32_t u; memcpy(&u, &buf{i}[l], 4); u &= 0x7FFFFFFFu;",
            f"            most{i} = u > most{i} ? u : most{i};",
            "        }",
            f"        if (most{i} > 0x7F800000u) most{i} = 0x7FC00000u;  /* NaN */",
            f"        float top{i}; memcpy(&top{i}, &most{i}, 4);",
            f"        a{i}[blk] = top{i};",
            "        for (int64_t l = 0; l < len; ++l)",
            f"            x{i}[start + l] = encode_{suffix}(buf{i}[l] / top{i}{extra});",
        ]
    lines += ["    }", "}"]
    return lines


def generate(program: Program, storage: str | Mapping[str, str]) -> str:
    """C source of ``ravine_update`` (and ``ravine_reduce`` if the program reduces).

    ``storage``: the format of every stream (a name in :data:`STORAGE`), or a format per
    stream name; arithmetic runs in the parameters' compute precision.
    """
    formats = [storage if isinstance(storage, str) else storage[name] for name in program.arrays]
    ctype = COMPUTE[FORMATS[formats[0]]]
    streams = {name: i for i, name in enumerate(program.arrays)}
    signature = "int64_t n, const int64_t* restrict offsets, void* const* restrict ptrs, "
    signature += "const double* restrict sc, int64_t nthreads"

    compact = [f for f in formats if f in BLOCKED or f == "bfloat16-sr"]
    if any(f in compact for f in formats[:2]):
        raise ValueError(f"compact formats are for state, not p and g: {formats[:2]}")
    source = [_PRELUDE]
    # compact streams divide as the per-tensor reference does: their codes and random bits
    # match it exactly (see docs/state.md); plain ones multiply by reciprocals
    update = program.schedule("update", reciprocals=not compact)
    if compact:
        source += _tables({BLOCKED[f] for f in compact if f in BLOCKED})
        loop = _compact_update(program, formats, ctype, update)
    else:
        header, body = _statements(update, ctype)
        for name, value in update.results:
            format_ = STORAGE[formats[streams[name]]]
            body.append(f"x{streams[name]}[e] = {format_.store.format(value, format_.storage)};")
        loop = _loop(body, header, formats, ctype)
    source.append(f"void ravine_update({signature}) {{")
    source.append("#pragma omp parallel num_threads(nthreads)")
    source.append("{")
    source += loop
    source.append("}")
    source.append("}")

    if program.reductions:
        reduction = program.schedule("reduction", reciprocals=True)
        header, body = _statements(reduction, ctype)
        count = len(reduction.results)
        body += [f"part{r}[j] += {v} * {v};" for r, (_, v) in enumerate(reduction.results)]
        opening = [f"{ctype} part{r}[{LANES}] = {{0}};" for r in range(count)]
        closing = [
            f"for (int j = 0; j < {LANES}; ++j) acc{r}[j] += (double)part{r}[j];"
            for r in range(count)
        ]
        source.append(f"void ravine_reduce({signature}, double* restrict partial) {{")
        source.append("#pragma omp parallel num_threads(nthreads)")
        source.append("{")
        source += [f"double acc{r}[{LANES}] = {{0}};" for r in range(count)]
        source += _loop(body, header, formats, ctype, lanes=LANES, block=(opening, closing))
        for r in range(count):
            source.append(f"double total{r} = 0.0;")
            source.append(f"for (int j = 0; j < {LANES}; ++j) total{r} += acc{r}[j];")
            source.append(f"partial[omp_get_thread_num() * {count} + {r}] = total{r};")
        source.append("}")
        source.append("}")
    return "\n".join(source) + "\n"
