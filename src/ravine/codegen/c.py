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
}
"""Each of :data:`ravine.codegen.program.FORMATS` in C."""

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

    update = program.schedule("update", reciprocals=True)
    header, body = _statements(update, ctype)
    for name, value in update.results:
        format_ = STORAGE[formats[streams[name]]]
        body.append(f"x{streams[name]}[e] = {format_.store.format(value, format_.storage)};")
    source = [_PRELUDE, f"void ravine_update({signature}) {{"]
    source.append("#pragma omp parallel num_threads(nthreads)")
    source.append("{")
    source += _loop(body, header, formats, ctype)
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
