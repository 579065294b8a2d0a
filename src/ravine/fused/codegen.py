"""C source for a traced :class:`~ravine.fused.trace.Program`: one pass over memory.

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
in double — within two ulps of the division (measured), and division is the slowest
operation in the loop.
"""

from __future__ import annotations

from .trace import Program, Sym

STORAGE = {
    # storage dtype: (C storage type, C compute type)
    "float64": ("double", "double"),
    "float32": ("float", "float"),
    "bfloat16": ("uint16_t", "float"),
    "float16": ("_Float16", "float"),
}

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


def _load(storage: str, ctype: str, expr: str) -> str:
    if storage == "bfloat16":
        return f"bf16_load({expr})"
    return f"({ctype})({expr})"


def _store(storage: str, stype: str, value: str) -> str:
    if storage == "bfloat16":
        return f"bf16_store({value})"
    return f"({stype})({value})"


def _const(value: float, ctype: str) -> str:
    if value != value:
        return f"(({ctype})NAN)"
    if value in (float("inf"), float("-inf")):
        return f"(({ctype})({'-' if value < 0 else ''}INFINITY))"
    return f"(({ctype}){value!r})"


class _Emitter:
    """Names every node reachable from the outputs and writes one C statement per node."""

    def __init__(self, ctype: str, scalars: list[Sym], streams: dict[str, int]) -> None:
        self.ctype = ctype
        self.names: dict[int, str] = {id(s): f"s{i}" for i, s in enumerate(scalars)}
        self.scalars = {f"s{i}" for i in range(len(scalars))}
        self.reciprocals: set[int] = set()
        """Scalars the elements are divided by: the header computes their reciprocals."""
        self.streams = streams
        self.lines: list[str] = []

    def header(self) -> list[str]:
        """The kernel scalars (and reciprocals) as compute-type constants, per tensor."""
        ctype, count = self.ctype, len(self.scalars)
        lines = [f"const {ctype} s{i} = ({ctype})sc[{i}];" for i in range(count)]
        # in double, then rounded once: x * r{i} is within two ulps of x / s{i} (measured)
        return lines + [
            f"const {ctype} r{i} = ({ctype})(1.0 / sc[{i}]);" for i in sorted(self.reciprocals)
        ]

    def name(self, node: Sym) -> str:
        key = id(node)
        if key in self.names:
            return self.names[key]
        if node.op == "const":
            return _const(node.args[0], self.ctype)
        if node.op == "input":
            text = f"in{self.streams[node.args[0]]}"
        else:
            args = [self.name(a) for a in node.args]
            text = self._expression(node.op, args)
        local = f"v{len(self.names)}"
        self.lines.append(f"{self.ctype} {local} = {text};")
        self.names[key] = local
        return local

    def _expression(self, op: str, args: list[str]) -> str:
        if op == "div" and args[1] in self.scalars:
            # a division per element by a per-step scalar (bias corrections, a norm) becomes a
            # multiplication: division is the one slow operation, and it kept the
            # in-cache steps of Adam-like rules compute-bound
            self.reciprocals.add(int(args[1][1:]))
            return f"{args[0]} * r{args[1][1:]}"
        binary = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
        if op in binary:
            return f"{args[0]} {binary[op]} {args[1]}"
        if op == "neg":
            return f"-{args[0]}"
        if op == "sqrt":
            return f"{'sqrt' if self.ctype == 'double' else 'sqrtf'}({args[0]})"
        if op == "floor":  # max(x, lo), NaN propagating like torch.clamp
            return f"(({args[0]} != {args[0]}) || {args[0]} > {args[1]}) ? {args[0]} : {args[1]}"
        raise ValueError(f"no C for operation {op!r}")


LANES = 64
"""Partial sums per thread in a reduction: independent lanes let the compiler vectorize a
sum it may not reorder, and keep the result reproducible for a given thread count."""
BLOCKS = 256
"""Lanes sum in the compute type for this many blocks, then flush into double totals."""


def _loop(
    body: list[str],
    header: list[str],
    storage: str,
    program: Program,
    lanes: int = 1,
    block: tuple[list[str], list[str]] = ([], []),
) -> list[str]:
    """The thread's share of the elements, tensor by tensor; ``body`` sees element ``e``
    loaded into ``in0, in1, …`` and, in a reduction, its lane ``j``."""
    stype, ctype = STORAGE[storage]
    streams = program.arrays
    lines = [
        "int64_t total = offsets[n], lo, hi;",
        "span(total, &lo, &hi);",
        "for (int64_t k = first_tensor(offsets, n, lo); k < n && offsets[k] < hi; ++k) {",
        "    int64_t a = (lo > offsets[k] ? lo : offsets[k]) - offsets[k];",
        "    int64_t b = (hi < offsets[k + 1] ? hi : offsets[k + 1]) - offsets[k];",
    ]
    lines += [
        f"    {stype}* restrict x{i} = ({stype}*)ptrs[{i} * n + k];" for i in range(len(streams))
    ]
    lines += [f"    {line}" for line in header]
    element = [f"{ctype} in{i} = {_load(storage, ctype, f'x{i}[e]')};" for i in range(len(streams))]
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


def generate(program: Program, storage: str) -> str:
    """C source of ``ravine_update`` (and ``ravine_reduce`` if the program reduces)."""
    stype, ctype = STORAGE[storage]
    streams = {name: i for i, name in enumerate(program.arrays)}
    signature = "int64_t n, const int64_t* restrict offsets, void* const* restrict ptrs, "
    signature += "const double* restrict sc, int64_t nthreads"

    update_scalars = program.kernel_scalars()
    emit = _Emitter(ctype, update_scalars, streams)
    finals = {name: emit.name(node) for name, node in program.outputs.items()}
    stores = [
        f"x{streams[name]}[e] = {_store(storage, stype, value)};" for name, value in finals.items()
    ]
    header = emit.header()
    source = [_PRELUDE, f"void ravine_update({signature}) {{"]
    source.append("#pragma omp parallel num_threads(nthreads)")
    source.append("{")
    source += _loop(emit.lines + stores, header, storage, program)
    source.append("}")
    source.append("}")

    if program.reductions:
        reduce_scalars = program.reduction_scalars()
        emit = _Emitter(ctype, reduce_scalars, streams)
        values = [emit.name(r.args[0]) for r in program.reductions]
        sums = [f"part{r}[j] += {v} * {v};" for r, v in enumerate(values)]
        opening = [f"{ctype} part{r}[{LANES}] = {{0}};" for r in range(len(values))]
        closing = [
            f"for (int j = 0; j < {LANES}; ++j) acc{r}[j] += (double)part{r}[j];"
            for r in range(len(values))
        ]
        header = emit.header()
        source.append(f"void ravine_reduce({signature}, double* restrict partial) {{")
        source.append("#pragma omp parallel num_threads(nthreads)")
        source.append("{")
        source += [f"double acc{r}[{LANES}] = {{0}};" for r in range(len(values))]
        source += _loop(
            emit.lines + sums, header, storage, program, lanes=LANES, block=(opening, closing)
        )
        count = len(values)
        for r in range(count):
            source.append(f"double total{r} = 0.0;")
            source.append(f"for (int j = 0; j < {LANES}; ++j) total{r} += acc{r}[j];")
            source.append(f"partial[omp_get_thread_num() * {count} + {r}] = total{r};")
        source.append("}")
        source.append("}")
    return "\n".join(source) + "\n"
