"""Tracing: run a rule on symbolic values and record what it computes.

The fast path does not re-derive any rule. It calls the same functions as every other
implementation (:func:`ravine.rules.step.effective_gradient`, ``spec.group_scalars`` and
:func:`ravine.rules.step.update`) with :class:`Sym` values standing for the arrays and the
numeric hyperparameters, and records the operations into a :class:`Program`:

* *array* nodes (one value per element) become the body of a generated loop;
* *scalar* nodes (hyperparameters, t, bias corrections, NAdam's μ-product) are evaluated
  in Python, in double precision, before the loop — as the eager paths do;
* *reductions* (Σ x², for normalized GD's group norm) run as a separate pass first.

What a backend does with the program is :mod:`ravine.codegen.program`'s business (its
schedule, passes and calling convention); tracing only records.

Options that change the *shape* of the computation (``eps_mode``, ``ema``, ``maximize``,
whether ``weight_decay`` is 0, ``momentum_decay`` being None) are concrete during
tracing; they are part of :func:`static_key`, so each combination is traced once.
"""

from __future__ import annotations

from contextvars import ContextVar
from numbers import Real
from typing import Any, cast

from ..rules import Hyperparameters, Spec
from ..rules import step as rule_step
from .program import Node, Program


class TraceError(TypeError):
    """The rule did something that cannot be recorded (data-dependent control flow, an
    operand of an unknown type, state initialisation)."""


class Sym(Node):
    """A symbolic value that records the operations applied to it."""

    __slots__ = ()
    __hash__ = object.__hash__

    @property
    def _xp(self) -> _SymNamespace:  # consulted by ravine.rules._xp.namespace
        return NAMESPACE

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
        zero = bool(self.value == 0)
        decisions = _DECISIONS.get()
        if decisions is not None:
            decisions[self.args[0]] = "zero" if zero else "nonzero"
        return zero

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


class _Fill(Sym):
    """The parameters while a rule's ``init`` is traced: each state field comes out as the
    one value it is filled with."""

    __slots__ = ()

    @property
    def _xp(self) -> _FillNamespace:
        return _FillNamespace()


class _FillNamespace(_SymNamespace):
    def zeros_like(self, x: Any) -> Sym:
        return const(0.0)

    def full_like(self, x: Any, value: float) -> Sym:
        return _lift(value)


_DECISIONS: ContextVar[dict[str, Any] | None] = ContextVar("decisions", default=None)
"""While tracing: the hyperparameters the rule's code branched on, and how."""


class _Recorded(dict[str, Any]):
    """Hyperparameters that note which options (bools, strings, None) are read."""

    def __getitem__(self, name: str) -> Any:
        value = super().__getitem__(name)
        decisions = _DECISIONS.get()
        if decisions is not None and not isinstance(value, Sym):
            decisions[name] = value
        return value


def _is_numeric(value: Any) -> bool:
    if type(value) in (float, int):  # asked every step: skip the slow ABC check when we can
        return True
    return isinstance(value, Real) and not isinstance(value, bool)


def static_key(spec: Spec, hp: Hyperparameters) -> tuple[Any, ...]:
    """What a traced program depends on: options, and which numeric values are zero."""
    return (
        spec.name,
        *(
            (name, "zero" if value == 0 else "nonzero") if _is_numeric(value) else (name, value)
            for name, value in sorted(hp.items())
        ),
    )


def _collect_reductions(nodes: list[Node]) -> list[Node]:
    found: dict[int, Node] = {}
    stack, seen = list(nodes), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op == "sum_squares":
            found.setdefault(id(node), node)
        stack.extend(a for a in node.args if isinstance(a, Node))
    return list(found.values())


def trace(spec: Spec, hp: Hyperparameters) -> Program:
    """Trace one step of ``spec`` for the static options in ``hp``."""
    scalar_state = spec.scalar_state
    array_state = [f for f in spec.state_fields if f not in scalar_state]
    p = Sym("input", ("p",), "array")
    g = Sym("input", ("g",), "array")
    sym_hp = _Recorded(
        {
            name: Sym("input", (name,), "scalar", value) if _is_numeric(value) else value
            for name, value in hp.items()
        }
    )
    t = Sym("input", ("t",), "scalar")
    state_values = {
        **{f: Sym("input", (f,), "array") for f in array_state},
        **{f: Sym("input", (f,), "scalar") for f in scalar_state},
    }
    state = spec.state_type(**{f: state_values[f] for f in spec.state_fields})
    decisions: dict[str, Any] = {}
    token = _DECISIONS.set(decisions)
    try:
        g_eff = rule_step.effective_gradient(p, g, sym_hp)
        scalars = spec.group_scalars([g_eff]) if spec.group_scalars else {}
        # t is symbolic: the cast only tells the type checker
        t_sym = cast(int, t)
        p_new, new_state = rule_step.update(
            spec, p, g_eff, state, t=t_sym, hp=sym_hp, scalars=scalars
        )
        theta = _lift(rule_step.theta(spec, p, state))
        fill = _Fill("input", ("p",), "array")
        initial = spec.init(fill, **{name: sym_hp[name] for name in spec.init_args})._asdict()
    except TraceError:
        raise
    except (TypeError, AttributeError) as error:  # the rule used something we cannot trace
        raise TraceError(f"{spec.name}: {error}") from error
    finally:
        _DECISIONS.reset(token)
    new = new_state._asdict()
    outputs: dict[str, Node] = {"p": _lift(p_new), **{f: _lift(new[f]) for f in array_state}}
    for name, node in outputs.items():
        if node.kind != "array":
            raise TraceError(f"{spec.name}: output {name} does not depend on the arrays")
    scalar_outputs: dict[str, Node] = {f: _lift(new[f]) for f in scalar_state}
    scalar_inputs = (*(n for n, v in hp.items() if _is_numeric(v)), "t", *scalar_state)
    program = Program(
        spec=spec,
        arrays=("p", "g", *array_state),
        scalar_inputs=scalar_inputs,
        outputs=outputs,
        scalar_outputs=scalar_outputs,
        theta=theta,
        initial={name: _lift(value) for name, value in initial.items()},
        decisions=decisions,
    )
    program.reductions = _collect_reductions([*outputs.values(), *scalar_outputs.values()])
    return program
