"""The traced program as data: what every backend reads besides the update (decisions,
initial state, θ), the schedule and the reciprocal pass."""

from __future__ import annotations

import numpy as np
import pytest

from ravine.codegen import trace
from ravine.codegen.program import divide_by_reciprocals, evaluate
from ravine.rules import BY_NAME, SPECS


def test_decisions_name_what_the_traced_code_branched_on():
    adam = BY_NAME["Adam"]
    outside = trace.trace(adam, {**adam.defaults, "eps_mode": "outside", "weight_decay": 0.1})
    assert outside.decisions["eps_mode"] == "outside"
    assert outside.decisions["weight_decay"] == "nonzero"
    assert "beta" not in outside.decisions  # a number the code never tested: any value fits
    nag = BY_NAME["NAG"]
    program = trace.trace(nag, {**nag.defaults, "lookahead": "momentum", "ema": False})
    assert program.decisions["lookahead"] == "momentum" and program.decisions["ema"] is False


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_initial_state_is_the_rules_init_traced(spec):
    hp = {**spec.defaults}
    if "initial_accumulator_value" in hp:
        hp["initial_accumulator_value"] = 0.25
    program = trace.trace(spec, hp)
    expected = spec.init(np.zeros(3), **{k: hp[k] for k in spec.init_args})._asdict()
    assert set(program.initial) == set(expected)
    env = {k: float(v) for k, v in hp.items() if isinstance(v, float | int)}
    for name, value in expected.items():
        filled = evaluate(program.initial[name], env)
        assert np.all(np.asarray(value) == filled), name


def test_theta_is_the_stored_parameters_except_for_look_ahead_rules():
    for spec in SPECS:
        program = trace.trace(spec, dict(spec.defaults))
        assert program.theta is not None
        if spec.offset is None:
            assert program.theta.op == "input" and program.theta.args == ("p",)
        else:  # NAG: θ = φ + shift·m
            assert {s.args[0] for s in program.theta_scalars()} == {"shift"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_schedule_computes_each_node_once_in_dependency_order(spec):
    program = trace.trace(spec, {**spec.defaults, "weight_decay": 0.01})
    for kernel in ("update", "theta", *(("reduction",) if program.reductions else ())):
        schedule = program.schedule(kernel)
        defined = {f"s{i}" for i in range(schedule.scalars)}
        defined |= {f"in{k}" for k in range(len(schedule.streams))}
        for step in schedule.body:
            assert step.name not in defined
            assert all(isinstance(o, float) or o in defined for o in step.operands)
            defined.add(step.name)
        assert all(value in defined for _, value in schedule.results)


def test_reciprocal_pass_rewrites_only_divisions_by_per_step_scalars():
    adam = BY_NAME["Adam"]
    program = trace.trace(adam, dict(adam.defaults))
    plain, rewritten = program.schedule("update"), program.schedule("update", reciprocals=True)
    assert any(s.op == "div" and s.operands[1].startswith("s") for s in plain.body)
    assert not any(
        s.op == "div" and isinstance(s.operands[1], str) and s.operands[1].startswith("s")
        for s in rewritten.body
    )
    assert rewritten.reciprocals and not plain.reciprocals
    assert rewritten.scalars == plain.scalars  # the same per-step scalars, in the same order
    # the pass never touches host-side scalar nodes
    roots = list(program.outputs.values())
    assert divide_by_reciprocals(roots)[0] is not roots[0]
    assert all(r.kind == "array" for r in divide_by_reciprocals(roots))
