"""A traced step as data, and what every code generator shares.

:func:`ravine.codegen.trace.trace` records a rule's step as a :class:`Program`: a graph of
:class:`Node` values. This module holds everything a backend needs
beyond syntax:

* **the calling convention**: a kernel reads one pointer-table row per stream
  (:attr:`Program.arrays`: ``p``, ``g``, then the rule's array state) and an array of
  per-step scalars in double precision (:meth:`Program.kernel_scalars` order), computed on
  the host by :meth:`Program.evaluator`; a reduction pass returns one sum per
  :attr:`Program.reductions` entry, fed back under :func:`reduction_key`;
* **the schedule** (:meth:`Program.schedule`): every element-wise operation once, in
  dependency order, with its local name — a backend turns each :class:`Instruction` into one
  statement;
* **passes** on the graph, which a backend opts into so that backends that must round alike
  do the same thing: :func:`divide_by_reciprocals`;
* **scalar evaluation** on the host (:data:`SCALAR_OPS`, :func:`evaluate`,
  :func:`compile_scalars`), in double precision, as the eager paths compute them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..rules import Spec

INFIX = {
    "add": "{0} + {1}",
    "sub": "{0} - {1}",
    "mul": "{0} * {1}",
    "div": "{0} / {1}",
    "neg": "-{0}",
}
"""Arithmetic as C, JavaScript and Python (Triton) all write it: each backend's syntax table
starts from this (operands are names or parenthesized constants, so no precedence question
arises)."""

FORMATS = {
    "float64": "float64",
    "float32": "float32",
    "bfloat16": "float32",
    "float16": "float32",
    "bfloat16-sr": "float32",
    "8bit-signed": "float32",
    "8bit-unsigned": "float32",
}
"""Storage formats a stream may have → the precision its values are computed in. 16-bit
values are widened on load and rounded to nearest-even on store, as torch's casts do; the
compact formats of :mod:`ravine.quantization` (state only) decode to float32 and encode
from it."""


class Node:
    """A value in a traced graph: ``kind`` is 'array' (one value per element) or 'scalar'
    (one per step); ``op`` is 'input', 'const', one of :data:`SCALAR_OPS`, or
    'sum_squares'. Tracing records :class:`~ravine.codegen.trace.Sym`, a Node with
    operators."""

    __slots__ = ("args", "kind", "op", "value")
    __hash__ = object.__hash__

    def __init__(self, op: str, args: tuple[Any, ...], kind: str, value: Any = None) -> None:
        self.op, self.args, self.kind, self.value = op, args, kind, value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.op}, {self.kind})"


@dataclass(frozen=True)
class Instruction:
    """``name = op(operands)``: operands are earlier names or float constants."""

    name: str
    op: str
    operands: tuple[str | float, ...]


@dataclass(frozen=True)
class Schedule:
    """One kernel's work, in the names every backend uses.

    Per call: ``s{i}`` is scalar ``i`` of the scalar array (rounded to the compute
    precision), ``r{i}`` its reciprocal computed once in double then rounded (for the
    indices in :attr:`reciprocals`). Per element: ``in{k}`` is stream ``k`` loaded and
    widened, then :attr:`body` runs in order.
    """

    streams: tuple[str, ...]
    """Pointer-table rows, loaded as ``in0, in1, …``."""
    scalars: int
    """How many per-step scalars the kernel reads."""
    reciprocals: tuple[int, ...]
    body: tuple[Instruction, ...]
    results: tuple[tuple[str, str], ...]
    """Update: (stream, name) pairs stored in place. Reduction: (``sum{r}``, name) pairs
    whose squares are summed."""


@dataclass
class Program:
    """A traced step: streams in and out, scalar inputs, reductions and outputs."""

    spec: Spec
    arrays: tuple[str, ...]
    """Array streams, in kernel argument order: 'p', 'g', then the rule's array state."""
    scalar_inputs: tuple[str, ...]
    """Hyperparameters, 't' and the rule's scalar state, fed in Python."""
    outputs: dict[str, Node]
    """Stream name → new value (written in place)."""
    scalar_outputs: dict[str, Node]
    """Scalar state name → new value (evaluated in Python after the step)."""
    reductions: list[Node] = field(default_factory=list)
    """``sum_squares`` nodes, computed by a pass before the update."""
    theta: Node | None = None
    """The seed's θ from the stored parameters and state *before* the step (they differ
    for look-ahead rules): backends that report θ (the interactive page) evaluate it."""
    initial: dict[str, Node] = field(default_factory=dict)
    """State field → the scalar value it starts filled with (``spec.init``, traced)."""
    decisions: dict[str, Any] = field(default_factory=dict)
    """What the traced code branched on: options read (name → value) and numeric
    hyperparameters tested against zero (name → ``"zero"``/``"nonzero"``). Any
    hyperparameters that agree on these give the same program."""

    _frontiers: dict[str, list[Node]] = field(default_factory=dict, repr=False, compare=False)
    _evaluators: dict[str, Callable[[Mapping[str, float]], list[float]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def kernel_scalars(self) -> list[Node]:
        """Scalar nodes the update loop reads directly (evaluated in Python, then passed)."""
        return self._frontier("kernel", list(self.outputs.values()))

    def reduction_scalars(self) -> list[Node]:
        """Scalar nodes the reduction pass reads directly."""
        return self._frontier("reduction", [r.args[0] for r in self.reductions])

    def theta_scalars(self) -> list[Node]:
        """Scalar nodes :attr:`theta` reads directly."""
        return self._frontier("theta", [self.theta] if self.theta is not None else [])

    def evaluator(self, name: str) -> Callable[[Mapping[str, float]], list[float]]:
        """Compiled evaluation (see :func:`compile_scalars`) of the update's scalars then
        the new scalar state (``"update"``), or of the reduction pass's scalars
        (``"reduction"``)."""
        key = f"evaluate {name}"
        if key not in self._evaluators:
            nodes = (
                [*self.kernel_scalars(), *self.scalar_outputs.values()]
                if name == "update"
                else self.reduction_scalars()
            )
            self._evaluators[key] = compile_scalars(nodes)
        return self._evaluators[key]

    def reduction_results(self, totals: Sequence[float]) -> dict[str, float]:
        """The reduction pass's sums, keyed as :func:`evaluate` reads them."""
        return {
            reduction_key(node): float(total)
            for node, total in zip(self.reductions, totals, strict=True)
        }

    def schedule(self, kernel: str, *, reciprocals: bool = False) -> Schedule:
        """The ``"update"``, ``"reduction"`` or ``"theta"`` kernel's element-wise work in
        dependency order; ``reciprocals``: apply :func:`divide_by_reciprocals` first."""
        if kernel == "update":
            scalars, roots = self.kernel_scalars(), list(self.outputs.values())
            labels = list(self.outputs)
        elif kernel == "theta":
            assert self.theta is not None, "traced without θ"
            scalars, roots, labels = self.theta_scalars(), [self.theta], ["theta"]
        elif kernel != "reduction":
            raise ValueError(f"invalid kernel={kernel!r}; valid: 'update', 'reduction', 'theta'")
        else:
            scalars, roots = self.reduction_scalars(), [r.args[0] for r in self.reductions]
            labels = [f"sum{r}" for r in range(len(roots))]
        if reciprocals:
            roots = divide_by_reciprocals(roots)
        names: dict[int, str] = {id(s): f"s{i}" for i, s in enumerate(scalars)}
        streams = {name: k for k, name in enumerate(self.arrays)}
        body: list[Instruction] = []
        used_reciprocals: set[int] = set()

        def operand(node: Node) -> str | float:
            key = id(node)
            if key in names:
                return names[key]
            if node.op == "const":
                return float(node.args[0])
            if node.op == "reciprocal":  # of a per-step scalar: once per call
                index = int(names[id(node.args[0])][1:])
                used_reciprocals.add(index)
                names[key] = f"r{index}"
            elif node.op == "input":
                names[key] = f"in{streams[node.args[0]]}"
            else:
                operands = tuple(operand(a) for a in node.args)
                names[key] = f"v{len(body)}"
                body.append(Instruction(names[key], node.op, operands))
            return names[key]

        results = []
        for label, root in zip(labels, roots, strict=True):
            value = operand(root)
            assert isinstance(value, str), "an output is never a constant (checked when traced)"
            results.append((label, value))
        return Schedule(
            streams=self.arrays,
            scalars=len(scalars),
            reciprocals=tuple(sorted(used_reciprocals)),
            body=tuple(body),
            results=tuple(results),
        )

    def _frontier(self, name: str, roots: list[Node]) -> list[Node]:
        # asked every step: walked once (a program does not change after tracing)
        if name not in self._frontiers:
            found: dict[int, Node] = {}
            for root in roots:
                _frontier(root, found)
            self._frontiers[name] = list(found.values())
        return self._frontiers[name]


def _frontier(node: Node, found: dict[int, Node], seen: set[int] | None = None) -> None:
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if node.kind == "scalar":
        if node.op != "const":
            found.setdefault(id(node), node)
        return
    for arg in node.args:
        if isinstance(arg, Node):
            _frontier(arg, found, seen)


def divide_by_reciprocals(roots: list[Node]) -> list[Node]:
    """``roots`` with every element divided by a per-step scalar (bias corrections, a norm)
    multiplied by that scalar's reciprocal instead, computed once per call in double.

    Division is the one slow operation in the loop: it kept the in-cache steps of Adam-like
    rules compute-bound. ``x * (1/s)`` is within two ulps of ``x / s`` in float32
    (measured over 2·10⁷ samples); a backend that must round as the C kernels do applies
    this pass too, one that must equal NumPy does not. Scalar nodes, evaluated on the host,
    are left as they are; the per-step scalars read stay the same, in the same order.
    """
    memo: dict[int, Node] = {}
    inverse: dict[int, Node] = {}

    def rewrite(node: Node) -> Node:
        if node.kind == "scalar":
            return node
        if id(node) not in memo:
            args = tuple(rewrite(a) if isinstance(a, Node) else a for a in node.args)
            divisor = args[1] if node.op == "div" else None
            if isinstance(divisor, Node) and divisor.kind == "scalar" and divisor.op != "const":
                reciprocal = inverse.setdefault(
                    id(divisor), Node("reciprocal", (divisor,), "scalar")
                )
                memo[id(node)] = Node("mul", (args[0], reciprocal), "array")
            elif all(a is b for a, b in zip(args, node.args, strict=True)):
                memo[id(node)] = node
            else:
                memo[id(node)] = Node(node.op, args, node.kind, node.value)
        return memo[id(node)]

    return [rewrite(root) for root in roots]


def reduction_key(node: Node) -> str:
    """Where a reduction's sum is found in the scalar environment."""
    return f"reduction:{id(node)}"


SCALAR_OPS: dict[str, Callable[..., float]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "neg": lambda a: -a,
    "sqrt": math.sqrt,
    "floor": lambda a, lo: a if (a != a or a > lo) else lo,  # NaN propagates, as torch.clamp
    "reciprocal": lambda a: 1.0 / a,
}
"""Every operation a traced graph holds, on Python floats (double precision)."""


def evaluate(node: Node, env: Mapping[str, float], cache: dict[int, float] | None = None) -> float:
    """Value of a scalar node, given inputs (and ``sum_squares`` results) in ``env``."""
    cache = {} if cache is None else cache
    key = id(node)
    if key in cache:
        return cache[key]
    if node.op == "const":
        value = node.args[0]
    elif node.op == "input":
        value = float(env[node.args[0]])
    elif node.op == "sum_squares":
        value = float(env[reduction_key(node)])
    else:
        value = SCALAR_OPS[node.op](*(evaluate(a, env, cache) for a in node.args))
    cache[key] = value
    return value


def compile_scalars(nodes: list[Node]) -> Callable[[Mapping[str, float]], list[float]]:
    """:func:`evaluate` for several nodes at once, as one straight-line Python function.

    The same operations (:data:`SCALAR_OPS`) in the same order, so the same values bit for
    bit, without walking the graph: the fused step evaluates its scalars every step.
    :func:`evaluate` stays as the reference it is tested against.
    """
    names: dict[int, str] = {}
    lines: list[str] = []
    consts: dict[int, Any] = {}  # passed as objects: repr() would not round-trip every value

    def name(node: Node) -> str:
        key = id(node)
        if key not in names:
            if node.op == "const":
                consts[len(lines)] = node.args[0]
                text = f"consts[{len(lines)}]"
            elif node.op == "input":
                text = f"float(env[{node.args[0]!r}])"
            elif node.op == "sum_squares":
                text = f"float(env[{reduction_key(node)!r}])"
            else:
                text = f"ops[{node.op!r}]({', '.join(name(a) for a in node.args)})"
            names[key] = f"v{len(lines)}"
            lines.append(f"    {names[key]} = {text}")
        return names[key]

    results = [name(node) for node in nodes]
    source = "def scalars(env):\n" + "\n".join(lines) + f"\n    return [{', '.join(results)}]\n"
    namespace: dict[str, Any] = {"ops": SCALAR_OPS, "consts": consts}
    exec(compile(source, "<ravine scalars>", "exec"), namespace)
    function: Callable[[Mapping[str, float]], list[float]] = namespace["scalars"]
    return function
