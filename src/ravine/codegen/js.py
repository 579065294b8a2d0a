"""JavaScript for a traced :class:`~ravine.codegen.program.Program`: the rules of the
interactive page, in float64.

Each program becomes one object literal with the same calling convention as the C kernels
(:mod:`ravine.codegen.program`), over ``Float64Array`` streams ``x[k]`` of ``n`` elements::

    {decisions, arrays, scalarState, kernelScalars,
     init(env)            → {field: the value it starts filled with}
     reductionScalars(env), reduce(n, x, sc) → [Σ v², …]          (NormalizedGD only)
     scalars(env, red)    → [kernel scalars…, new scalar state…]   (host, double)
     update(n, x, sc)                                             (in place)
     theta(n, x, env)     → Float64Array                          (the seed's θ)}

``env`` holds the numeric hyperparameters, ``t`` and the scalar state by name, as the C
path's host evaluation does. No reciprocal pass is applied: every operation is the one the
rule wrote, in the order it wrote it, so the page equals :mod:`ravine.numpy` in float64
(tested in a browser to 1e-12).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from .program import INFIX, Node, Program, Schedule

SYNTAX = {
    **INFIX,
    "sqrt": "Math.sqrt({0})",
    "pow": "Math.pow({0}, {1})",
    "reciprocal": "1 / {0}",
    # max(x, lo), NaN propagating like np.maximum and torch.clamp
    "floor": "(({0} !== {0}) || {0} > {1}) ? {0} : {1}",
}
"""One JavaScript expression per traced operation (operands are names or parenthesized
constants, so no precedence question arises)."""


def _const(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "(-Infinity)"
    return f"({value!r})"  # repr round-trips, and JavaScript parses it to the same double


def _operand(value: str | float) -> str:
    return _const(value) if isinstance(value, float) else value


def _host_function(
    signature: str,
    nodes: Sequence[Node],
    reductions: Sequence[Node] = (),
    keys: Sequence[str] | None = None,
) -> str:
    """A straight-line function of ``env`` (and ``red``, the reduction sums) returning the
    values of ``nodes`` as an array (or as an object with ``keys``), as
    :func:`ravine.codegen.program.compile_scalars` does in Python."""
    names: dict[int, str] = {}
    lines: list[str] = []
    index = {id(r): i for i, r in enumerate(reductions)}

    def name(node: Node) -> str:
        key = id(node)
        if key not in names:
            if node.op == "const":
                text = _const(float(node.args[0]))
            elif node.op == "input":
                text = f"env[{json.dumps(node.args[0])}]"
            elif node.op == "sum_squares":
                text = f"red[{index[key]}]"
            else:
                text = SYNTAX[node.op].format(*(name(a) for a in node.args))
            names[key] = f"v{len(lines)}"
            lines.append(f"    const {names[key]} = {text};")
        return names[key]

    results = [name(node) for node in nodes]
    if keys is None:
        value = f"[{', '.join(results)}]"
    else:
        value = (
            "{"
            + ", ".join(f"{json.dumps(k)}: {v}" for k, v in zip(keys, results, strict=True))
            + "}"
        )
    body = "\n".join([*lines, f"    return {value};"])
    return f"{signature} {{\n{body}\n  }}"


def _kernel(signature: str, schedule: Schedule, scalars: str, result: str) -> str:
    """An element loop over ``n`` elements of the streams ``x``. ``scalars`` opens the
    function (defines ``sc``); ``result``: "store" (in place), "sum" (Σ v², returned) or
    "theta" (a new array, returned)."""
    lines = [scalars]
    lines += [f"const s{i} = sc[{i}];" for i in range(schedule.scalars)]
    lines += [f"const r{i} = 1 / sc[{i}];" for i in schedule.reciprocals]
    lines += [f"const x{k} = x[{k}];" for k in range(len(schedule.streams))]
    if result == "sum":
        lines += [f"let sum{r} = 0;" for r in range(len(schedule.results))]
    if result == "theta":
        lines.append("const out = new Float64Array(n);")
    lines.append("for (let e = 0; e < n; e++) {")
    body = [f"const in{k} = x{k}[e];" for k in range(len(schedule.streams))]
    for step in schedule.body:
        operands = [_operand(o) for o in step.operands]
        body.append(f"const {step.name} = {SYNTAX[step.op].format(*operands)};")
    streams = {name: k for k, name in enumerate(schedule.streams)}
    for r, (label, value) in enumerate(schedule.results):
        if result == "store":
            body.append(f"x{streams[label]}[e] = {value};")
        elif result == "sum":
            body.append(f"sum{r} += {value} * {value};")
        else:
            body.append(f"out[e] = {value};")
    lines += [f"  {line}" for line in body]
    lines.append("}")
    if result == "sum":
        lines.append(f"return [{', '.join(f'sum{r}' for r in range(len(schedule.results)))}];")
    if result == "theta":
        lines.append("return out;")
    inner = "\n".join(f"    {line}" for line in lines[1:])
    return f"{signature} {{\n    {lines[0]}\n{inner}\n  }}"


def generate(program: Program) -> str:
    """The program as one JavaScript object literal (an expression)."""
    kernel_scalars = program.kernel_scalars()
    fields = [*program.arrays[2:], *program.scalar_outputs]
    parts = {
        "decisions": json.dumps(program.decisions),
        "arrays": json.dumps(list(program.arrays)),
        "scalarState": json.dumps(list(program.scalar_outputs)),
        "kernelScalars": str(len(kernel_scalars)),
        "init": _host_function("(env) =>", [program.initial[f] for f in fields], keys=fields),
        "scalars": _host_function(
            "(env, red) =>",
            [*kernel_scalars, *program.scalar_outputs.values()],
            program.reductions,
        ),
        "update": _kernel(
            "(n, x, sc) =>", program.schedule("update"), "// sc: the kernel scalars", "store"
        ),
        "theta": _kernel(
            "(n, x, env) =>",
            program.schedule("theta"),
            "const sc = thetaScalars(env);",
            "theta",
        ).replace(
            "thetaScalars(env)",
            "(" + _host_function("(env) =>", program.theta_scalars()) + ")(env)",
        ),
    }
    if program.reductions:
        parts["reductionScalars"] = _host_function("(env) =>", program.reduction_scalars())
        parts["reduce"] = _kernel(
            "(n, x, sc) =>", program.schedule("reduction"), "// sc: the reduction scalars", "sum"
        )
    body = ",\n".join(f"  {key}: {value}" for key, value in parts.items())
    return "{\n" + body + "\n}"
