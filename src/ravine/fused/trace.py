"""Tracing: run a rule on symbolic values and record what it computes.

The fast path does not re-derive any rule. It calls the same functions as every other
implementation (:func:`ravine.rules.step.effective_gradient`, ``spec.group_scalars`` and
:func:`ravine.rules.step.update`) with :class:`Sym` values standing for the arrays and the
numeric hyperparameters, and records the operations into a :class:`Program`:

* *array* nodes (one value per element) become the body of a generated loop;
* *scalar* nodes (hyperparameters, t, bias corrections, NAdam's μ-product) are evaluated
  in Python, in double precision, before the loop — as the eager paths do;
* *reductions* (Σ x², for normalized GD's group norm) run as a separate pass first.

Options that change the *shape* of the computation (``eps_mode``, ``ema``, ``maximize``,
whether ``weight_decay`` is 0, ``momentum_decay`` being None) are concrete during
tracing; they are part of :func:`static_key`, so each combination is traced once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, cast

from ..rules import Spec
from ..rules import step as rule_step


class TraceError(TypeError):
    """The rule did something the fast path cannot compile (a fallback is used instead)."""


class Sym:
    """A symbolic value: ``kind`` is 'array' (per element) or 'scalar'."""

    __slots__ = ("args", "kind", "op", "value")
    __hash__ = object.__hash__

    def __init__(self, op: str, args: tuple[Any, ...], kind: str, value: Any = None) -> None:
        self.op, self.args, self.kind, self.value = op, args, kind, value

    @property
    def _xp(self) -> _SymNamespace:  # consulted by ravine.rules._xp.namespace
        return NAMESPACE

    def __repr__(self) -> str:
        return f"Sym({self.op}, {self.kind})"

    # arithmetic -------------------------------------------------------------------------
    def __add__(self, other: Any) -> Sym:
        return _op("add", self, other)

    def __radd__(self, other: Any) -> Sym:
        return _op("add", other, self)

    def __sub__(self, other: Any) -> Sym:
        return _op("sub", self, other)

    def __rsub__(self, other: Any) -> Sym:
        return _op("sub", other, self)

    def __mul__(self, other: Any) -> Sym:
        return _op("mul", self, other)

    def __rmul__(self, other: Any) -> Sym:
        return _op("mul", other, self)

    def __truediv__(self, other: Any) -> Sym:
        return _op("div", self, other)

    def __rtruediv__(self, other: Any) -> Sym:
        return _op("div", other, self)

    def __pow__(self, other: Any) -> Sym:
        return _op("pow", self, other)

    def __rpow__(self, other: Any) -> Sym:
        return _op("pow", other, self)

    def __neg__(self) -> Sym:
        return _op("neg", self)

    # the only decisions a rule may take on a numeric hyperparameter: is it zero? ---------
    def __eq__(self, other: object) -> bool:
        return self._zero_test(other)

    def __ne__(self, other: object) -> bool:
        return not self._zero_test(other)

    def _zero_test(self, other: object) -> bool:
        if self.op != "input" or self.kind != "scalar" or other != 0:
            raise TraceError(f"cannot compare a traced value ({self!r}) with {other!r}")
        return bool(self.value == 0)

    def __bool__(self) -> bool:
        raise TraceError(f"a traced value ({self!r}) cannot decide control flow")


def const(value: float) -> Sym:
    return Sym("const", (float(value),), "scalar")


def _lift(x: Any) -> Sym:
    if isinstance(x, Sym):
        return x
    if isinstance(x, Real) and not isinstance(x, bool):
        return const(float(x))
    raise TraceError(f"cannot trace an operand of type {type(x).__name__}")


def _op(op: str, *args: Any) -> Sym:
    lifted = tuple(_lift(a) for a in args)
    kind = "array" if any(a.kind == "array" for a in lifted) else "scalar"
    if op == "pow" and kind == "array":
        raise TraceError("elementwise powers are not supported by the fast path")
    return Sym(op, lifted, kind)


class _SymNamespace:
    def sqrt(self, x: Any) -> Sym:
        return _op("sqrt", x)

    def sum_squares(self, x: Any) -> Sym:
        x = _lift(x)
        if x.kind != "array":
            raise TraceError("sum_squares of a scalar")
        return Sym("sum_squares", (x,), "scalar")

    def floor(self, x: Any, low: float) -> Sym:
        return _op("floor", x, low)

    def zeros_like(self, x: Any) -> Sym:
        raise TraceError("state initialisation is not traced")

    def full_like(self, x: Any, value: float) -> Sym:
        raise TraceError("state initialisation is not traced")


NAMESPACE = _SymNamespace()


def _is_numeric(value: Any) -> bool:
    if type(value) in (float, int):  # asked every step: skip the slow ABC check when we can
        return True
    return isinstance(value, Real) and not isinstance(value, bool)


def static_key(spec: Spec, hp: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a traced program depends on: options, and which numeric values are zero."""
    return (
        spec.name,
        *(
            (name, "zero" if value == 0 else "nonzero") if _is_numeric(value) else (name, value)
            for name, value in sorted(hp.items())
        ),
    )


@dataclass
class Program:
    """A traced step: streams in and out, scalar inputs, reductions and outputs."""

    spec: Spec
    arrays: tuple[str, ...]
    """Array streams, in kernel argument order: 'p', 'g', then the rule's array state."""
    scalar_inputs: tuple[str, ...]
    """Hyperparameters, 't' and the rule's scalar state, fed in Python."""
    outputs: dict[str, Sym]
    """Stream name → new value (written in place)."""
    scalar_outputs: dict[str, Sym]
    """Scalar state name → new value (evaluated in Python after the step)."""
    reductions: list[Sym] = field(default_factory=list)
    """``sum_squares`` nodes, computed by a pass before the update."""

    _frontiers: dict[str, list[Sym]] = field(default_factory=dict, repr=False, compare=False)
    _evaluators: dict[str, Callable[[Mapping[str, float]], list[float]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def kernel_scalars(self) -> list[Sym]:
        """Scalar nodes the update loop reads directly (evaluated in Python, then passed)."""
        return self._frontier("kernel", list(self.outputs.values()))

    def reduction_scalars(self) -> list[Sym]:
        """Scalar nodes the reduction pass reads directly."""
        return self._frontier("reduction", [r.args[0] for r in self.reductions])

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

    def _frontier(self, name: str, roots: list[Sym]) -> list[Sym]:
        # asked every step: walked once (a program does not change after tracing)
        if name not in self._frontiers:
            found: dict[int, Sym] = {}
            for root in roots:
                _frontier(root, found)
            self._frontiers[name] = list(found.values())
        return self._frontiers[name]


def _frontier(node: Sym, found: dict[int, Sym], seen: set[int] | None = None) -> None:
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if node.kind == "scalar":
        if node.op != "const":
            found.setdefault(id(node), node)
        return
    for arg in node.args:
        if isinstance(arg, Sym):
            _frontier(arg, found, seen)


def _collect_reductions(nodes: list[Sym]) -> list[Sym]:
    found: dict[int, Sym] = {}
    stack, seen = list(nodes), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op == "sum_squares":
            found.setdefault(id(node), node)
        stack.extend(a for a in node.args if isinstance(a, Sym))
    return list(found.values())


def trace(spec: Spec, hp: Mapping[str, Any]) -> Program:
    """Trace one step of ``spec`` for the static options in ``hp``."""
    scalar_state = spec.scalar_state
    array_state = [f for f in spec.state_fields if f not in scalar_state]
    p = Sym("input", ("p",), "array")
    g = Sym("input", ("g",), "array")
    sym_hp = {
        name: Sym("input", (name,), "scalar", value) if _is_numeric(value) else value
        for name, value in hp.items()
    }
    t = Sym("input", ("t",), "scalar")
    state_values = {
        **{f: Sym("input", (f,), "array") for f in array_state},
        **{f: Sym("input", (f,), "scalar") for f in scalar_state},
    }
    state = spec.state_type(**{f: state_values[f] for f in spec.state_fields})
    try:
        g_eff = rule_step.effective_gradient(p, g, sym_hp)
        scalars = spec.group_scalars([g_eff]) if spec.group_scalars else {}
        # t is symbolic: the cast only tells the type checker
        t_sym = cast(int, t)
        p_new, new_state = rule_step.update(
            spec, p, g_eff, state, t=t_sym, hp=sym_hp, scalars=scalars
        )
    except TraceError:
        raise
    except (TypeError, AttributeError) as error:  # the rule used something we cannot trace
        raise TraceError(f"{spec.name}: {error}") from error
    new = new_state._asdict()
    outputs = {"p": _lift(p_new), **{f: _lift(new[f]) for f in array_state}}
    for name, node in outputs.items():
        if node.kind != "array":
            raise TraceError(f"{spec.name}: output {name} does not depend on the arrays")
    scalar_outputs = {f: _lift(new[f]) for f in scalar_state}
    scalar_inputs = (*(n for n, v in hp.items() if _is_numeric(v)), "t", *scalar_state)
    program = Program(
        spec=spec,
        arrays=("p", "g", *array_state),
        scalar_inputs=scalar_inputs,
        outputs=outputs,
        scalar_outputs=scalar_outputs,
    )
    program.reductions = _collect_reductions([*outputs.values(), *scalar_outputs.values()])
    return program


_SCALAR_OPS: dict[str, Callable[..., float]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "neg": lambda a: -a,
    "sqrt": math.sqrt,
    "floor": lambda a, lo: a if (a != a or a > lo) else lo,  # NaN propagates, as torch.clamp
}


def evaluate(node: Sym, env: Mapping[str, float], cache: dict[int, float] | None = None) -> float:
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
        value = float(env[f"reduction:{key}"])
    else:
        value = _SCALAR_OPS[node.op](*(evaluate(a, env, cache) for a in node.args))
    cache[key] = value
    return value


def compile_scalars(nodes: list[Sym]) -> Callable[[Mapping[str, float]], list[float]]:
    """:func:`evaluate` for several nodes at once, as one straight-line Python function.

    The same operations (:data:`_SCALAR_OPS`) in the same order, so the same values bit for
    bit, without walking the graph: the fused step evaluates its scalars every step.
    :func:`evaluate` stays as the reference it is tested against.
    """
    names: dict[int, str] = {}
    lines: list[str] = []
    consts: dict[int, Any] = {}  # passed as objects: repr() would not round-trip every value

    def name(node: Sym) -> str:
        key = id(node)
        if key not in names:
            if node.op == "const":
                consts[len(lines)] = node.args[0]
                text = f"consts[{len(lines)}]"
            elif node.op == "input":
                text = f"float(env[{node.args[0]!r}])"
            elif node.op == "sum_squares":
                text = f"float(env['reduction:{key}'])"
            else:
                text = f"ops[{node.op!r}]({', '.join(name(a) for a in node.args)})"
            names[key] = f"v{len(lines)}"
            lines.append(f"    {names[key]} = {text}")
        return names[key]

    results = [name(node) for node in nodes]
    source = "def scalars(env):\n" + "\n".join(lines) + f"\n    return [{', '.join(results)}]\n"
    namespace: dict[str, Any] = {"ops": _SCALAR_OPS, "consts": consts}
    exec(compile(source, "<ravine scalars>", "exec"), namespace)
    function: Callable[[Mapping[str, float]], list[float]] = namespace["scalars"]
    return function
