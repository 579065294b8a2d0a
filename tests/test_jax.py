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
        assert {k: p.default for k, p in sig.parameters.items()} == dict(BY_NAME[name].defaults)


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


# ravine's arguments that take exactly optax's steps (docs/conventions.md)
LR, B, G, E = 0.01, 0.9, 0.99, 1e-3
OPTAX_ROWS = {
    "sgd": (rj.sgd(LR), optax.sgd(LR)),
    "momentum": (rj.momentum(LR, beta=B, ema=False), optax.sgd(LR, momentum=B)),
    "nag": (
        rj.nag(LR, beta=B, ema=False, lookahead="momentum"),
        optax.sgd(LR, momentum=B, nesterov=True),
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
