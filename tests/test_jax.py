"""ravine.jax: the rules as optax transformations, against ravine.numpy and optax."""

from __future__ import annotations

import numpy as np
import pytest

try:
    import jax
    import jax.numpy as jnp
    import optax
except ImportError:  # pragma: no cover - the jax extra is optional
    pytest.skip("jax and optax are not installed (the 'jax' extra)", allow_module_level=True)

import ravine.jax as rj
import ravine.numpy as rn
from ravine.rules import BY_NAME

NAMES = list(BY_NAME)
STEPS = 60
SHAPES = {"a": (3,), "b": (2, 2)}
CURVATURE = {"a": np.array([1.0, 10.0, 0.1]), "b": np.array([[2.0, 0.5], [5.0, 0.3]])}


@pytest.fixture(autouse=True)
def x64():
    """float64 in JAX for this module (restored after each test)."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def start() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.normal(size=s) for k, s in SHAPES.items()}


def noise(t: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(100 + t)
    return {k: 0.1 * rng.normal(size=s) for k, s in SHAPES.items()}


def grad(params, t: int):
    """A noisy ill-conditioned quadratic's gradient, in the params' own array type."""
    return {k: CURVATURE[k] * params[k] + noise(t)[k] for k in SHAPES}


def run_jax(opt, steps: int, *, jit: bool = False):
    params = {k: jnp.asarray(v) for k, v in start().items()}
    state = opt.init(params)

    def step(params, grads, state):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    for t in range(steps):
        params, state = step(params, grad(params, t), state)
    return params, state


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


CONFIGS = [
    {},
    {"weight_decay": 0.05},
    {"weight_decay": 0.05, "decoupled_weight_decay": True},
    {"maximize": True},
]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "l2", "decoupled", "maximize"])
@pytest.mark.parametrize("name", NAMES)
def test_parity_with_numpy(name, config):
    hp = {"lr": 0.01, **config}
    np_opt = rn.OPTIMIZERS[name](**hp)
    params = start()
    state = np_opt.init(params)
    for t in range(STEPS):
        params, state = np_opt.update(params, grad(params, t), state)
    jparams, jstate = run_jax(rj.OPTIMIZERS[name](**hp), STEPS)
    assert int(jstate.count) == state.t == STEPS
    for k in SHAPES:
        assert jparams[k].dtype == jnp.float64
        assert rel(jparams[k], params[k]) <= 1e-12
        for field, want in state.rule[k]._asdict().items():
            assert rel(getattr(jstate.rule[k], field), want) <= 1e-12, (k, field)
        assert rel(rj.theta(jparams, jstate)[k], np_opt.theta(params, state)[k]) <= 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_jit_equals_eager(name):
    opt = rj.OPTIMIZERS[name](lr=0.01, weight_decay=0.01)
    eager, eager_state = run_jax(opt, 10)
    jitted, jit_state = run_jax(opt, 10, jit=True)
    for a, b in zip(
        jax.tree_util.tree_leaves((eager, eager_state)),
        jax.tree_util.tree_leaves((jitted, jit_state)),
        strict=True,
    ):
        assert rel(a, b) <= 1e-12


def test_chain_with_clipping_and_apply_updates():
    clip = optax.clip_by_global_norm(1.0)
    chained = optax.chain(clip, rj.adam(lr=0.05))
    params, state = run_jax(chained, 20)
    # the same steps, clipping by hand
    alone = rj.adam(lr=0.05)
    p = {k: jnp.asarray(v) for k, v in start().items()}
    s = alone.init(p)
    for t in range(20):
        g = grad(p, t)
        g, _ = clip.update(g, clip.init(p))
        updates, s = alone.update(g, s, p)
        p = optax.apply_updates(p, updates)
    for k in SHAPES:
        assert rel(params[k], p[k]) <= 1e-12
    # theta finds the ravine state inside a chain's state
    nag_chain = optax.chain(clip, rj.nag(lr=0.05))
    params, state = run_jax(nag_chain, 5)
    lookahead_state = state[1]
    want = {
        k: params[k] + lookahead_state.rule[k].m * lookahead_state.rule[k].shift for k in SHAPES
    }
    for k in SHAPES:
        assert rel(rj.theta(params, state)[k], want[k]) <= 1e-15


def test_state_round_trips_through_tree_util():
    opt = rj.nadam(lr=0.01, momentum_decay=4e-3)
    params, state = run_jax(opt, 5)
    leaves, treedef = jax.tree_util.tree_flatten(state)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(rebuilt, rj.RavineState)
    assert jax.tree_util.tree_structure(rebuilt) == treedef
    g = grad(params, 5)
    u1, s1 = opt.update(g, state, params)
    u2, s2 = opt.update(g, rebuilt, params)
    for a, b in zip(
        jax.tree_util.tree_leaves((u1, s1)), jax.tree_util.tree_leaves((u2, s2)), strict=True
    ):
        assert np.array_equal(a, b)
    # the state has the same structure after a step as at init (scan/jit friendly)
    assert jax.tree_util.tree_structure(opt.init(params)) == treedef


@pytest.mark.parametrize("name", NAMES)
def test_save_to_numpy_files_load_and_continue_is_exact(name, tmp_path):
    """params and state saved leaf by leaf with np.savez, loaded into a fresh init's tree,
    and stepped on: bit for bit the run that never stopped."""
    opt = rj.OPTIMIZERS[name](lr=0.01)
    straight, straight_state = run_jax(opt, 10)
    params, state = run_jax(opt, 5)
    leaves = jax.tree_util.tree_leaves((params, state))
    np.savez(tmp_path / "ckpt.npz", *[np.asarray(x) for x in leaves])
    loaded = np.load(tmp_path / "ckpt.npz")
    _, treedef = jax.tree_util.tree_flatten((params, opt.init(params)))
    params, state = jax.tree_util.tree_unflatten(
        treedef, [jnp.asarray(loaded[f"arr_{i}"]) for i in range(len(leaves))]
    )
    for t in range(5, 10):
        updates, state = opt.update(grad(params, t), state, params)
        params = optax.apply_updates(params, updates)
    for a, b in zip(
        jax.tree_util.tree_leaves((params, state)),
        jax.tree_util.tree_leaves((straight, straight_state)),
        strict=True,
    ):
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize(
    "name, bad",
    [
        ("Adam", {"lr": -1.0}),
        ("Adam", {"beta": 1.5}),
        ("Adam", {"eps_mode": "sideways"}),
        ("NAG", {"lookahead": "far"}),
        ("SGD", {"nonsense": 1}),
        ("RMSProp", {"maximize": "yes"}),
    ],
)
def test_validation_messages_match_numpy(name, bad):
    with pytest.raises(Exception) as want:
        rn.OPTIMIZERS[name](**bad)
    with pytest.raises(type(want.value)) as got:
        rj.OPTIMIZERS[name](**bad)
    assert str(got.value) == str(want.value)


def test_signature_and_defaults_match_the_registry():
    import inspect

    for name, make in rj.OPTIMIZERS.items():
        sig = inspect.signature(make)
        extra = {"axis_name": None} if name == "NormalizedGD" else {}
        want = {**BY_NAME[name].defaults, **extra}
        assert {k: p.default for k, p in sig.parameters.items()} == want


def test_bfloat16_params_compute_in_float32():
    params = {"w": jnp.asarray([1.0, -2.0, 3.0], dtype=jnp.bfloat16)}
    opt = rj.adam(lr=0.1)
    state = opt.init(params)
    assert state.rule["w"].m.dtype == jnp.float32
    updates, state = opt.update({"w": 2 * params["w"]}, state, params)
    assert updates["w"].dtype == jnp.bfloat16
    assert state.rule["w"].G.dtype == jnp.float32
    new = optax.apply_updates(params, updates)
    assert new["w"].dtype == jnp.bfloat16
    assert rel(new["w"], [0.9, -1.9, 2.9]) <= 1e-2
    # without params, the updates come back in the gradients' dtype
    updates, _ = opt.update({"w": 2 * params["w"]}, opt.init(params))
    assert updates["w"].dtype == jnp.bfloat16


# ravine's arguments that take exactly optax's steps (docs/conventions.md)
LR, B, G, E = 0.01, 0.9, 0.99, 1e-3
OPTAX_ROWS = {
    "sgd": (rj.sgd(LR), optax.sgd(LR)),
    "momentum": (rj.momentum(LR, beta=B, ema=False), optax.sgd(LR, momentum=B)),
    "nag": (
        rj.nag(LR, beta=B, ema=False, lookahead="momentum"),
        optax.sgd(LR, momentum=B, nesterov=True),
    ),
    "normalized_gd": (
        rj.normalized_gd(LR, eps=1e-6),
        optax.chain(optax.normalize_by_update_norm(), optax.sgd(LR)),
    ),
    "rmsprop": (rj.rmsprop(LR, gamma=G, eps=E), optax.rmsprop(LR, decay=G, eps=E)),
    "adadelta": (
        rj.adadelta(1.0, gamma=G, eps=E),
        optax.adadelta(learning_rate=1.0, rho=G, eps=E),
    ),
    "adagrad": (
        rj.adagrad(LR, eps=E, initial_accumulator_value=0.1),
        optax.adagrad(LR, eps=E),
    ),
    "adam": (rj.adam(LR, beta=B, gamma=G, eps=E), optax.adam(LR, b1=B, b2=G, eps=0, eps_root=E)),
    "adam_outside": (
        rj.adam(LR, beta=B, gamma=G, eps=E, eps_mode="outside"),
        optax.adam(LR, b1=B, b2=G, eps=E),
    ),
    "nadam": (
        rj.nadam(LR, beta=B, gamma=G, eps=E),
        optax.nadam(LR, b1=B, b2=G, eps=0, eps_root=E),
    ),
}


@pytest.mark.parametrize("row", list(OPTAX_ROWS))
def test_parity_with_optax(row):
    ours, theirs = OPTAX_ROWS[row]
    a, _ = run_jax(ours, STEPS)
    b, _ = run_jax(theirs, STEPS)
    for k in SHAPES:
        assert rel(a[k], b[k]) <= 1e-12, (k, rel(a[k], b[k]))


# schedules and inject_hyperparams ------------------------------------------------------


def ravine_state(state) -> rj.RavineState:
    """The ravine state inside any optax state (a chain's, inject_hyperparams', ...)."""
    found = [
        s
        for s in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, rj.RavineState))
        if isinstance(s, rj.RavineState)
    ]
    assert len(found) == 1
    return found[0]


def run_numpy(name: str, hp: dict, steps: int, changes=lambda t: {}):
    """ravine.numpy's trajectory; ``changes(t)`` gives hyperparameters set for step t."""
    opt = rn.OPTIMIZERS[name](**hp)
    params = start()
    state = opt.init(params)
    for t in range(steps):
        params, state = opt.replace(**changes(t)).update(params, grad(params, t), state)
    return params, state, opt


def assert_matches_numpy(jparams, jstate, params, state, tol=1e-12):
    rule = ravine_state(jstate).rule
    for k in SHAPES:
        assert rel(jparams[k], params[k]) <= tol, k
        for field, want in state.rule[k]._asdict().items():
            assert rel(getattr(rule[k], field), want) <= tol, (k, field)


SCHEDULE = optax.piecewise_constant_schedule(0.02, {15: 0.5, 30: 0.5, 45: 0.2})
"""lr(count), count = steps taken before this one (0 on the first step)."""


def smooth(start: float, end: float, steps: int):
    """A schedule from start to end over steps, computed in float64: optax's own schedules
    compute in the count's type, int32 → float32, where jit and eager round differently."""
    return lambda count: start + (end - start) * jnp.minimum(jnp.asarray(count, float) / steps, 1)


def at(schedule, t: int) -> float:
    """A schedule's value at step count t, given as optax and ravine.jax give it: an int32
    array (optax's schedules then compute in float32, even under x64)."""
    return float(schedule(jnp.asarray(t, dtype=jnp.int32)))


@pytest.mark.parametrize("name", NAMES)
def test_lr_schedule_matches_numpy_with_the_lr_set_each_step(name):
    hp = {"weight_decay": 0.05}
    params, state, _ = run_numpy(name, {"lr": 0.02, **hp}, STEPS, lambda t: {"lr": at(SCHEDULE, t)})
    make = rj.OPTIMIZERS[name]
    direct = run_jax(make(lr=SCHEDULE, **hp), STEPS)
    # inject_hyperparams passes every number as a traced array: weight_decay too
    injected = run_jax(optax.inject_hyperparams(make)(lr=SCHEDULE, **hp), STEPS, jit=True)
    for jparams, jstate in (direct, injected):
        assert_matches_numpy(jparams, jstate, params, state)
    assert float(injected[1].hyperparams["lr"]) == at(SCHEDULE, STEPS - 1)


@pytest.mark.parametrize("name", ["NAG", "Adam"])
def test_inject_hyperparams_lr_set_between_steps(name):
    lrs = [0.01] * 20 + [0.03] * 20 + [0.002] * 20
    hp = {"weight_decay": 0.05, "decoupled_weight_decay": True}
    opt = optax.inject_hyperparams(rj.OPTIMIZERS[name])(lr=lrs[0], **hp)
    p = {k: jnp.asarray(v) for k, v in start().items()}
    s = opt.init(p)

    @jax.jit
    def step(p, g, s):
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s

    for t, lr in enumerate(lrs):
        s.hyperparams["lr"] = jnp.asarray(lr)
        p, s = step(p, grad(p, t), s)
        assert float(s.hyperparams["lr"]) == lr
    params, state, np_opt = run_numpy(name, {"lr": lrs[0], **hp}, STEPS, lambda t: {"lr": lrs[t]})
    assert_matches_numpy(p, s, params, state)
    theta = np_opt.replace(lr=lrs[-1]).theta(params, state)
    for k in SHAPES:
        assert rel(rj.theta(p, s)[k], theta[k]) <= 1e-12


@pytest.mark.parametrize(
    "name, field, schedule",
    [
        ("Momentum", "beta", smooth(0.5, 0.95, 40)),
        ("RMSProp", "gamma", smooth(0.8, 0.99, 40)),
        ("NAdam", "beta", smooth(0.95, 0.5, 40)),
        ("Adagrad", "eps", smooth(1e-2, 1e-8, 30)),
    ],
)
def test_inject_hyperparams_schedules_other_hyperparameters(name, field, schedule):
    opt = optax.inject_hyperparams(rj.OPTIMIZERS[name])(lr=0.01, **{field: schedule})
    jparams, jstate = run_jax(opt, STEPS, jit=True)
    params, state, _ = run_numpy(name, {"lr": 0.01}, STEPS, lambda t: {field: at(schedule, t)})
    assert_matches_numpy(jparams, jstate, params, state)


@pytest.mark.parametrize(
    "name, bad",
    [
        ("Adam", {"lr": -1.0}),
        ("Adam", {"beta": 1.5}),
        ("AdaDelta", {"eps": float("nan")}),
        ("NAdam", {"momentum_decay": -1.0}),
    ],
)
def test_array_hyperparameters_are_checked_as_numbers_are(name, bad):
    with pytest.raises(ValueError) as want:
        rn.OPTIMIZERS[name](**bad)
    with pytest.raises(ValueError) as got:
        rj.OPTIMIZERS[name](**{k: jnp.asarray(v) for k, v in bad.items()})
    assert str(got.value) == str(want.value)
    # inject_hyperparams builds the transformation (with arrays) in init
    injected = optax.inject_hyperparams(rj.OPTIMIZERS[name])(**bad)
    with pytest.raises(ValueError) as got:
        injected.init(start())
    assert str(got.value) == str(want.value)


def test_bad_hyperparameter_types_name_the_argument_and_what_is_valid():
    with pytest.raises(ValueError, match=r"^Adam: invalid lr of shape \(2,\); valid: a scalar"):
        rj.adam(lr=jnp.ones(2))
    with pytest.raises(ValueError, match=r"invalid lr of shape \(3,\)"):  # traced: shape known
        jax.jit(lambda lr: rj.adam(lr=lr).init(jnp.zeros(2)))(jnp.ones(3))
    with pytest.raises(
        TypeError,
        match=r"^Adam: beta must be a real number, got the callable .*; only lr takes a "
        r"schedule here: schedule beta with optax.inject_hyperparams\(ravine.jax.adam\)",
    ):
        rj.adam(beta=lambda count: 0.9)
    with pytest.raises(TypeError, match=r"^Adam: invalid eps_mode=.*valid: eps_mode in \{'inside'"):
        rj.adam(eps_mode=jnp.asarray(1.0))
    with pytest.raises(TypeError, match=r"^NormalizedGD: invalid axis_name=3; valid: None, an"):
        rj.normalized_gd(axis_name=3)
    with pytest.raises(TypeError, match=r"^Adam: unexpected argument\(s\) axis_name"):
        rj.adam(axis_name="x")
    # a schedule's value is checked when it is known (eagerly)
    opt = rj.sgd(lr=lambda count: -1.0)
    with pytest.raises(ValueError, match=r"^SGD: invalid lr=-1.0; valid: 0 <= lr"):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)), jnp.ones(2))


def test_bfloat16_hyperparameters_rounded_out_of_range_say_why():
    params = {"w": jnp.asarray([1.0, -2.0, 3.0], dtype=jnp.bfloat16)}
    # inject_hyperparams casts to the params' dtype: γ = 0.999 becomes 1 in bfloat16
    with pytest.raises(
        ValueError, match=r"invalid gamma=1\.0.*arrived as bfloat16.*hyperparam_dtype=jnp.float32"
    ):
        optax.inject_hyperparams(rj.adam)(lr=0.1).init(params)
    opt = optax.inject_hyperparams(rj.adam, hyperparam_dtype=jnp.float32)(lr=0.1)
    updates, _ = opt.update({"w": 2 * params["w"]}, opt.init(params), params)
    assert rel(optax.apply_updates(params, updates)["w"], [0.9, -1.9, 2.9]) <= 1e-2


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_traced_hyperparameters_take_the_python_numbers_steps(weight_decay):
    p = {k: jnp.asarray(v) for k, v in start().items()}

    def steps(lr, beta, weight_decay):
        opt = rj.nag(lr=lr, beta=beta, weight_decay=weight_decay)
        s, q = opt.init(p), p
        for t in range(5):
            updates, s = opt.update(grad(q, t), s, q)
            q = optax.apply_updates(q, updates)
        return q, s

    want = steps(0.01, 0.8, weight_decay)
    got = jax.jit(steps)(0.01, 0.8, weight_decay)  # every hyperparameter a tracer
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        assert rel(a, b) <= 1e-14


# apply_if_finite, MultiSteps, masks ------------------------------------------------------


def jitted_step(opt):
    @jax.jit
    def step(p, g, s):
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s

    return step


def trees_equal(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_apply_if_finite_skips_a_nan_gradient(name):
    opt = optax.apply_if_finite(rj.OPTIMIZERS[name](lr=0.01, weight_decay=0.05), 3)
    step = jitted_step(opt)
    p = {k: jnp.asarray(v) for k, v in start().items()}
    s = opt.init(p)
    for t in range(5):
        p, s = step(p, grad(p, t), s)
    bad = grad(p, 5)
    bad["a"] = bad["a"].at[1].set(jnp.nan)
    skipped_p, skipped_s = step(p, bad, s)
    assert trees_equal(skipped_p, p)
    assert trees_equal(skipped_s.inner_state, s.inner_state)
    assert int(skipped_s.notfinite_count) == 1
    # the next finite step is the one that would have come without the NaN
    assert trees_equal(step(skipped_p, grad(p, 6), skipped_s)[0], step(p, grad(p, 6), s)[0])


@pytest.mark.parametrize("name", NAMES)
def test_multisteps_equals_one_step_on_the_mean_gradient(name):
    def make():
        return rj.OPTIMIZERS[name](lr=0.01, weight_decay=0.05)

    # MultiSteps accumulates in float32 unless told otherwise
    accumulate = optax.MultiSteps(make(), every_k_schedule=2, accumulator_dtype=jnp.float64)
    one = make()
    p = q = {k: jnp.asarray(v) for k, v in start().items()}
    s, r = accumulate.init(p), one.init(q)
    micro_step = jax.jit(accumulate.update)
    for t in range(5):
        updates, s = micro_step(grad(p, 2 * t), s, p)
        assert all(not np.any(u) for u in jax.tree_util.tree_leaves(updates))
        updates, s = micro_step(grad(p, 2 * t + 1), s, p)
        p = optax.apply_updates(p, updates)
        mean = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, grad(q, 2 * t), grad(q, 2 * t + 1))
        updates, r = one.update(mean, r, q)
        q = optax.apply_updates(q, updates)
    for k in SHAPES:
        assert rel(p[k], q[k]) <= 1e-12
        assert rel(rj.theta(p, s)[k], rj.theta(q, r)[k]) <= 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_update_without_params(name):
    opt = rj.OPTIMIZERS[name](lr=0.01)
    want_p, want_s = run_jax(opt, 20)
    p = {k: jnp.asarray(v) for k, v in start().items()}
    s = opt.init(p)
    for t in range(20):
        updates, s = opt.update(grad(p, t), s)
        p = optax.apply_updates(p, updates)
    for k in SHAPES:
        assert rel(p[k], want_p[k]) <= 1e-12
    for a, b in zip(jax.tree_util.tree_leaves(s), jax.tree_util.tree_leaves(want_s), strict=True):
        assert rel(a, b) <= 1e-12


@pytest.mark.parametrize("decoupled", [False, True])
def test_update_without_params_raises_when_weight_decay_reads_them(decoupled):
    opt = rj.adam(lr=0.01, weight_decay=0.1, decoupled_weight_decay=decoupled)
    p = {k: jnp.asarray(v) for k, v in start().items()}
    with pytest.raises(
        ValueError,
        match=r"^Adam: update\(grads, state, params\) needs params when weight_decay=0.1 "
        r"\(weight decay reads θ\); pass params, or weight_decay=0.0",
    ):
        opt.update(grad(p, 0), opt.init(p))


def test_update_without_params_under_inject_hyperparams():
    p = {k: jnp.asarray(v) for k, v in start().items()}
    g = grad(p, 0)
    want, _ = rj.adam(lr=0.01).update(g, rj.adam(lr=0.01).init(p))
    # injected, weight_decay is a tracer: it may be non-zero, so params are needed...
    injected = optax.inject_hyperparams(rj.adam)(lr=0.01)
    with pytest.raises(ValueError, match=r"weight_decay is traced.*static_args='weight_decay'"):
        jax.jit(injected.update)(g, injected.init(p))
    # ...unless it is kept static, as the message says
    static = optax.inject_hyperparams(rj.adam, static_args="weight_decay")(lr=0.01)
    got, _ = jax.jit(static.update)(g, static.init(p))
    for k in SHAPES:
        assert rel(got[k], want[k]) <= 1e-15


@pytest.mark.parametrize("name", NAMES)
def test_none_leaves_are_masked_parameters(name):
    opt = rj.OPTIMIZERS[name](lr=0.01, weight_decay=0.05)
    frozen = jnp.asarray([3.0, -1.0])
    p = {**{k: jnp.asarray(v) for k, v in start().items()}, "frozen": frozen, "gone": None}
    s = opt.init(p)
    frozen_state = s.rule["frozen"]
    update = jax.jit(opt.update)
    for t in range(10):
        g = {**grad(p, t), "frozen": None, "gone": None}
        updates, s = update(g, s, p)
        assert updates["frozen"] is None and updates["gone"] is None
        p = {k: p[k] if updates[k] is None else p[k] + updates[k] for k in p}
    assert s.rule["gone"] is None and trees_equal(s.rule["frozen"], frozen_state)
    assert np.array_equal(p["frozen"], frozen)
    # the other leaves step as if the masked ones were not there (NormalizedGD: nor its norm)
    params, state, _ = run_numpy(name, {"lr": 0.01, "weight_decay": 0.05}, 10)
    assert_matches_numpy(p, s, params, state)


def test_optax_masked_leaves_pass_through():
    def descend(opt, keys, steps=10):
        p = {k: jnp.asarray(v) for k, v in start().items() if k in keys}
        s = opt.init(p)
        for t in range(steps):
            g = {k: v for k, v in grad({**start(), **p}, t).items() if k in keys}
            updates, s = opt.update(g, s, p)
            p = optax.apply_updates(p, updates)
        return p

    masked = descend(
        optax.masked(rj.adam(lr=0.05, weight_decay=0.1), {"a": True, "b": False}), "ab"
    )
    alone = descend(rj.adam(lr=0.05, weight_decay=0.1), "a")
    assert rel(masked["a"], alone["a"]) <= 1e-12
    sgd = descend(optax.sgd(-1.0), "b")  # masked.update passes b's gradient through as is
    assert rel(masked["b"], sgd["b"]) <= 1e-12


# NormalizedGD across devices --------------------------------------------------------------

SHARDED = """
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
jax.config.update("jax_enable_x64", True)
import ravine.jax as rj

rng = np.random.default_rng(0)
shapes = {"a": (8,), "b": (4, 3)}
params = {k: jnp.asarray(rng.normal(size=s)) for k, s in shapes.items()}
grads = [{k: jnp.asarray(rng.normal(size=s)) for k, s in shapes.items()} for _ in range(3)]

def run(opt, params, grads):
    state = opt.init(params)
    for g in grads:
        updates, state = opt.update(g, state, params)
        params = jax.tree.map(jnp.add, params, updates)
    return params

def make(axis_name):
    return rj.normalized_gd(lr=0.1, weight_decay=0.01, axis_name=axis_name)

def error(got, want):
    return max(float(jnp.max(jnp.abs(got[k].reshape(want[k].shape) - want[k]))) for k in want)

want = run(make(None), params, grads)
mesh = jax.make_mesh((2,), ("x",))
put = lambda tree: jax.device_put(tree, NamedSharding(mesh, P("x")))
result = {"devices": jax.device_count()}
for axis_name, key in (("x", "shard_map"), (None, "shard_map_without_axis_name")):
    local = jax.shard_map(
        lambda p, g: run(make(axis_name), p, g), mesh=mesh, in_specs=P("x"), out_specs=P("x")
    )
    got = jax.jit(local)(put(params), put(grads))
    result[key] = error(got, want)
    result[key + "_sharded"] = str(got["a"].sharding.spec)
halves = lambda tree: jax.tree.map(lambda x: x.reshape(2, -1, *x.shape[1:]), tree)
got = jax.pmap(lambda p, g: run(make("x"), p, g), axis_name="x")(halves(params), halves(grads))
result["pmap"] = error(got, want)
print(json.dumps(result))
"""


def test_normalized_gd_axis_name_takes_the_norm_across_devices():
    import json
    import os
    import subprocess
    import sys

    # the flag must be set before jax is imported: a fresh process
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    assert result["shard_map_sharded"] == "P('x',)"
    assert result["shard_map"] <= 1e-12
    assert result["pmap"] <= 1e-12
    # without axis_name each device normalizes its own half: a different step
    assert result["shard_map_without_axis_name"] > 1e-3


# training -------------------------------------------------------------------------------


BATCH = 128
STEPS_MLP = 300
MLP_LR = {
    "SGD": 0.5,
    "Momentum": 0.5,
    "NAG": 0.5,
    "NormalizedGD": 0.05,
    "Adagrad": 0.05,
    "RMSProp": 3e-3,
    "AdaDelta": 1.0,
    "Adam": 1e-2,
    "NAdam": 1e-2,
}
OPTAX_ADAM = {
    # ravine.jax.adam's arguments: optax.adam's, where the forms coincide
    "eps inside": ({}, {"eps": 0.0, "eps_root": 1e-8}),  # the seed's ε in the root
    "eps outside": ({"eps_mode": "outside"}, {}),  # optax's default
}


def mlp_loss(params, x, y):
    """Cross-entropy of a 64-32-10 tanh MLP."""
    logits = jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
    picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def train_side_by_side(opts: dict, steps: int) -> dict:
    """Train the MLP on sklearn's digits with each optimizer, 128 digits a step in a fixed
    shuffled order: per optimizer the params, each step's batch loss, and the loss on all
    digits before and after. Everything runs in one compiled program: compiling, not
    training, is what costs here (each eager op outside it would be compiled too)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(1).permutation(len(digits.target))
    order = order[: len(order) // BATCH * BATCH]
    xs = (digits.data[order] / 16.0).reshape(-1, BATCH, 64)
    ys = digits.target[order].reshape(-1, BATCH)
    rng = np.random.default_rng(0)
    start = {
        "w1": rng.normal(size=(64, 32)) / 8,
        "b1": np.zeros(32),
        "w2": rng.normal(size=(32, 10)) / np.sqrt(32),
        "b2": np.zeros(10),
    }

    @jax.jit
    def train(start, xs, ys):
        def step(carry, i):
            new, losses = {}, {}
            for key, (params, state) in carry.items():
                batch = (xs[i % len(xs)], ys[i % len(ys)])
                losses[key], grads = jax.value_and_grad(mlp_loss)(params, *batch)
                updates, state = opts[key].update(grads, state, params)
                new[key] = (optax.apply_updates(params, updates), state)
            return new, losses

        carry = {key: (start, opt.init(start)) for key, opt in opts.items()}
        carry, losses = jax.lax.scan(step, carry, jnp.arange(steps))
        x, y = xs.reshape(-1, 64), ys.reshape(-1)
        return {
            key: (params, losses[key], mlp_loss(start, x, y), mlp_loss(params, x, y))
            for key, (params, _) in carry.items()
        }

    return train(start, xs, ys)


@pytest.fixture(scope="module")
def trained():
    """The nine optimizers, and Adam beside optax.adam, trained on the digits (float64)."""
    opts = {name: rj.OPTIMIZERS[name](lr=MLP_LR[name]) for name in NAMES}
    for form, (ours, theirs) in OPTAX_ADAM.items():
        opts[f"ravine {form}"] = rj.adam(1e-2, **ours)
        opts[f"optax {form}"] = optax.adam(1e-2, **theirs)
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        return train_side_by_side(opts, STEPS_MLP)
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.mark.parametrize("name", NAMES)
def test_mlp_loss_falls_on_digits(name, trained):
    params, losses, before, after = trained[name]
    assert params["w1"].dtype == jnp.float64
    assert np.all(np.isfinite(losses))
    assert float(after) < 0.25 * float(before), (float(before), float(after))


@pytest.mark.parametrize("form", list(OPTAX_ADAM))
def test_mlp_trains_as_optax_adam_does(form, trained):
    p, losses, before, after = trained[f"ravine {form}"]
    q, optax_losses, _, _ = trained[f"optax {form}"]
    assert float(after) < 0.1 * float(before)
    assert np.max(np.abs(np.asarray(losses) - np.asarray(optax_losses))) <= 1e-12
    for k in p:
        assert rel(p[k], q[k]) <= 1e-12, k


def load_bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "jax_bench.py"
    module_spec = importlib.util.spec_from_file_location("jax_bench", path)
    assert module_spec is not None and module_spec.loader is not None
    bench = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(bench)
    return bench


def test_benchmark_twins_take_the_same_steps():
    bench = load_bench()
    assert set(bench.TWINS) == {"adam", "rmsprop", "momentum", "adagrad"}
    for name, (ours, theirs) in bench.TWINS.items():
        a, _ = run_jax(ours(), STEPS)
        b, _ = run_jax(theirs(), STEPS)
        for k in SHAPES:
            assert rel(a[k], b[k]) <= 1e-12, (name, k)


# the update is computed as a change, not as new params − params -------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "l2", "decoupled", "maximize"])
@pytest.mark.parametrize("name", NAMES)
def test_step_delta_is_update_minus_params(name, config):
    """ravine.rules.step.group_delta, on NumPy arrays: p + delta is group_update's p and
    the states are the same, over 60 steps of the other front-ends' trajectory."""
    from ravine.rules import step as rule_step

    spec = BY_NAME[name]
    hp = spec.validate({**spec.defaults, "lr": 0.01, **config})
    init = {k: hp[k] for k in spec.init_args}
    ps = list(start().values())
    states = [spec.init(p, **init) for p in ps]
    for t in range(STEPS):
        gs = list(grad(dict(zip(SHAPES, ps, strict=True)), t).values())
        new = rule_step.group_update(spec, ps, gs, states, t=t + 1, hp=hp)
        changes = rule_step.group_delta(spec, ps, gs, states, t=t + 1, hp=hp)
        for p, (new_p, new_s), (change, change_s) in zip(ps, new, changes, strict=True):
            assert rel(p + change, new_p) <= 1e-12
            assert rel(change, new_p - p) <= 1e-9  # the change itself, not only p + change
            for a, b in zip(change_s, new_s, strict=True):
                assert np.array_equal(a, b)
        ps, states = [p for p, _ in new], [s for _, s in new]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_sgd_update_is_minus_lr_g_bit_for_bit(jit):
    """A plain rule's update is −lr·d itself, as optax's: not (θ − lr·d) − θ, which rounds
    twice."""
    rng = np.random.default_rng(3)
    params = {"w": jnp.asarray(rng.normal(size=1000).astype(np.float32) * 100)}
    grads = {"w": jnp.asarray(rng.normal(size=1000).astype(np.float32))}
    want = np.asarray(grads["w"]) * np.float32(-0.01)
    for opt in (rj.sgd(lr=0.01), optax.sgd(0.01)):
        update = jax.jit(opt.update) if jit else opt.update
        updates, _ = update(grads, opt.init(params), params)
        assert updates["w"].dtype == jnp.float32
        assert np.array_equal(np.asarray(updates["w"]), want)


def elementwise_ops(opt, n: int = 4099) -> int:
    """How many elementwise operations on whole float32[n] tensors the compiled training
    step (update, then apply_updates) of one tensor performs, inside XLA's fused loops."""
    import re

    params, grads = jnp.ones(n, jnp.float32), jnp.full(n, 0.5, jnp.float32)

    def step(p, s, g):
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s

    text = jax.jit(step).lower(params, opt.init(params), grads).compile().as_text()
    layout = {"parameter", "constant", "broadcast", "bitcast", "copy", "fusion", "tuple"}
    found = re.findall(rf"= f32\[{n}\]\S* ([a-z-]+)\(", text)
    return sum(op not in layout for op in found)


@pytest.mark.parametrize("name", ["adam", "rmsprop", "momentum", "adagrad"])
def test_compiled_step_does_no_more_elementwise_work_than_optax(name):
    """The benchmark's pairs, in float32 on one tensor: ravine's fused step does as many
    elementwise operations as optax's (it did two more per element, a subtraction each in
    θ − lr·d and in new − θ, when the update was new params − params). Slack 1: an
    operation XLA happens to place differently must not fail this; the two it catches
    cannot hide in it."""
    jax.config.update("jax_enable_x64", False)  # float32 as benchmarked (the fixture restores)
    ours, theirs = load_bench().TWINS[name]
    ravine_ops, optax_ops = elementwise_ops(ours()), elementwise_ops(theirs())
    assert optax_ops >= 2, "no elementwise ops found: has XLA's HLO text changed?"
    assert ravine_ops <= optax_ops + 1, (ravine_ops, optax_ops)
