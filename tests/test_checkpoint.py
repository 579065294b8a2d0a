"""Checkpoints load exactly or fail clearly, leaving the optimizer exactly as it was."""

from __future__ import annotations

import copy
import io
import random

import pytest
import torch

import ravine.torch as rt
from conftest import IMPLEMENTATIONS
from ravine.rules import SPECS
from ravine.torch import CheckpointError, checkpoint

NAMES = [s.name for s in SPECS]


def _trained(name, steps=3, impl="fused", named=False):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)).double()
    params = list(model.named_parameters()) if named else list(model.parameters())
    opt = rt.OPTIMIZERS[name](params, lr=0.05, **IMPLEMENTATIONS[impl])
    for step in range(steps):
        opt.zero_grad()
        model(torch.full((2, 3), 0.1 * step + 0.1, dtype=torch.float64)).sum().backward()
        opt.step()
    return model, opt


def _snapshot(opt):
    return copy.deepcopy(opt.state_dict())


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _broken(name):
    """(description, state dict that must be refused, what the error must say) for one
    optimizer."""
    _, opt = _trained(name)
    sd = _snapshot(opt)
    spec = rt.OPTIMIZERS[name].spec
    cases = []

    def case(what, edit, says):
        bad = copy.deepcopy(sd)
        edit(bad)
        cases.append((what, bad, says))

    first = next(iter(sd["state"]))
    arrays = [f for f in spec.state_fields if f not in spec.scalar_state]
    group = lambda d: d["param_groups"][0]  # noqa: E731
    state = lambda d: d["state"][first]  # noqa: E731
    case("not a dict", lambda d: d.clear(), "a mapping with 'state' and 'param_groups'")
    case(
        "a group too many",
        lambda d: d["param_groups"].append(copy.deepcopy(group(d))),
        "the state has 2 param groups, the optimizer 1",
    )
    case("a parameter too few", lambda d: group(d)["params"].pop(), "has 3 parameters, the optim")
    case("bad hyperparameter", lambda d: group(d).update(lr=-1.0), r"param group 0 .*lr.*-1\.0")
    case("both foreach and fused", lambda d: group(d).update(foreach=True, fused=True),
         "foreach=True and fused=True exclude each other")  # fmt: skip
    case("foreach not a bool", lambda d: group(d).update(foreach="yes"),
         "foreach must be True, False or None, got 'yes'")  # fmt: skip
    case("another optimizer", lambda d: d["ravine"].update(optimizer="Other"),
         "the state of a 'Other' optimizer")  # fmt: skip
    case("unknown format", lambda d: d["ravine"].update(format=99), "unknown checkpoint format")
    if spec.state_fields:  # with only "step", popping it leaves {}: a parameter not yet stepped
        case("missing key", lambda d: state(d).pop("step"), rf"has keys .*; {name} keeps")
    case("extra key", lambda d: state(d).update(extra=torch.zeros(1)), r"has keys \[.*'extra'")
    case("negative step", lambda d: state(d).update(step=-1),
         "step must be a non-negative integer, got -1")  # fmt: skip
    case("parameter out of range", lambda d: d["state"].update({99: state(d)}),
         "state for parameter 99, which no group lists")  # fmt: skip
    torch_entry = {"step": 1, "exp_avg": torch.zeros(1)}
    case("torch's keys", lambda d: d["state"].update({first: torch_entry}), "torch.optim's keys")
    for field in arrays:
        case(f"{field} wrong shape", lambda d, f=field: state(d).update({f: torch.zeros(7)}),
             rf"{field} has shape \(7,\), the parameter needs")  # fmt: skip
        case(f"{field} not floating", lambda d, f=field: state(d).update({f: state(d)[f].long()}),
             f"{field} must be a floating-point tensor")  # fmt: skip
    for field in spec.scalar_state:
        case(f"{field} NaN", lambda d, f=field: state(d).update({f: float("nan")}),
             f"{field} must be a finite number, got nan")  # fmt: skip
    return cases


@pytest.mark.parametrize("name", NAMES)
def test_states_that_do_not_fit_are_refused_and_change_nothing(name):
    _, opt = _trained(name)
    before = _snapshot(opt)
    for what, bad, says in _broken(name):
        with pytest.raises(CheckpointError, match=says) as error:
            opt.load_state_dict(bad)
        assert str(error.value).startswith(name), what  # every refusal names the optimizer
        assert _same(opt.state_dict(), before), f"{what} changed the optimizer"


def test_a_changed_parameter_order_is_detected_with_names():
    model, opt = _trained("Adam", named=True)
    sd = _snapshot(opt)
    assert sd["param_groups"][0]["param_names"][0] == "0.weight"
    reordered = list(reversed(list(model.named_parameters())))
    other = rt.Adam(reordered, lr=0.05)
    with pytest.raises(CheckpointError, match="order or the model changed"):
        other.load_state_dict(sd)


@pytest.mark.parametrize("name", NAMES)
def test_torch_load_weights_only_round_trip(name, tmp_path):
    model, opt = _trained(name)
    path = tmp_path / "ckpt.pt"
    checkpoint.save(path, {"model": model.state_dict(), "optimizer": opt.state_dict()})
    loaded = checkpoint.load(path)  # weights_only=True inside
    model2, opt2 = _trained(name, steps=0)
    model2.load_state_dict(loaded["model"])
    opt2.load_state_dict(loaded["optimizer"])
    assert _same(opt2.state_dict(), opt.state_dict())


def test_truncated_and_corrupted_files_are_reported(tmp_path):
    _model, opt = _trained("Adam")
    path = tmp_path / "ckpt.pt"
    checkpoint.save(path, opt.state_dict())
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    noisy = bytearray(data)
    random.Random(0).shuffle(noisy)
    (tmp_path / "noise.pt").write_bytes(bytes(noisy))
    (tmp_path / "empty.pt").write_bytes(b"")
    for bad in ("cut.pt", "noise.pt"):
        with pytest.raises(CheckpointError, match="truncated or corrupted"):
            checkpoint.load(tmp_path / bad)
    # regression (review): an empty file's error has no text; the reason was left blank
    with pytest.raises(CheckpointError, match=r"corrupted\?\): \S"):
        checkpoint.load(tmp_path / "empty.pt")


def _torch_state(cls, **hp):
    """A torch.optim state dict saved before its first step (its per-parameter state is
    empty, so only the param groups can tell where it came from)."""
    _model, opt = _trained("Adam", steps=0)
    return cls([p.detach().clone() for p in opt.param_groups[0]["params"]], **hp).state_dict()


@pytest.mark.parametrize(
    "saved",
    [
        pytest.param(lambda: _torch_state(torch.optim.SGD, lr=0.5, momentum=0.9), id="torch SGD"),
        pytest.param(
            lambda: _torch_state(torch.optim.Adam, lr=0.5, betas=(0.5, 0.6)), id="torch Adam"
        ),
        pytest.param(lambda: _torch_state(torch.optim.RMSprop, lr=0.5), id="torch RMSprop"),
    ],
)
def test_a_torch_optim_state_without_per_parameter_state_is_refused(saved):
    """Regression (review): with empty per-parameter state nothing was refused: torch's
    SGD state loaded into Adam and set lr = 0.5, and torch Adam's betas were ignored."""
    _model, opt = _trained("Adam")
    before = _snapshot(opt)
    with pytest.raises(CheckpointError, match=r"names no optimizer and has \[.*from_torch"):
        opt.load_state_dict(saved())
    assert _same(opt.state_dict(), before)


def _stripped(name, steps):
    """A ravine state without its "ravine" entry (torch.distributed.checkpoint drops it)."""
    _model, opt = _trained(name, steps=steps)
    return {k: v for k, v in _snapshot(opt).items() if k != "ravine"}


@pytest.mark.parametrize(("source", "target", "says"), [
    ("SGD", "Adam", r"lacks \['beta', 'gamma'"),
    ("Adam", "RMSProp", r"has \['beta', 'bias_correction'\], which RMSProp does not take"),
    ("NAG", "Momentum", r"has \['lookahead'\]"),
])  # fmt: skip
def test_a_state_that_names_no_optimizer_must_hold_exactly_its_hyperparameters(
    source, target, says
):
    """Regression (review): a never-stepped state without its "ravine" entry said nothing
    of where it came from; SGD's loaded into Adam (beta, gamma, … filled in), Adam's into
    RMSProp (with Adam's gamma, 0.999)."""
    _model, opt = _trained(target)
    before = _snapshot(opt)
    with pytest.raises(CheckpointError, match=says):
        opt.load_state_dict(_stripped(source, steps=0))
    assert _same(opt.state_dict(), before)


def test_a_state_identified_by_its_per_parameter_state_loads_without_the_entry():
    """torch.distributed.checkpoint drops the "ravine" entry but steps the optimizer
    before saving: the per-parameter state's keys say which rule saved it, so a
    hyperparameter added since still loads with its default."""
    _model, opt = _trained("Adam", steps=1)  # another state than the one loaded

    def stripped_now():
        return {k: v for k, v in _snapshot(opt).items() if k != "ravine"}

    own = _stripped("Adam", steps=3)
    assert not _same(stripped_now(), own)
    opt.load_state_dict(own)
    assert _same(stripped_now(), own)
    older = copy.deepcopy(own)
    del older["param_groups"][0]["bias_correction"]  # saved before it existed
    opt.param_groups[0]["bias_correction"] = False  # so only the load can make it True
    opt.load_state_dict(older)
    assert opt.param_groups[0]["bias_correction"] is True
    loaded = _snapshot(opt)
    with pytest.raises(CheckpointError, match=r"state of parameter 0 has keys \['step'\]"):
        opt.load_state_dict(_stripped("SGD", steps=3))  # stepped SGD: its state says so
    assert _same(opt.state_dict(), loaded)


def test_another_optimizers_hyperparameter_is_refused_even_in_an_identified_state():
    """Regression (review): RMSProp and Adagrad both keep {step, G}, so a stepped RMSProp
    state without its entry loaded into Adagrad (its averaged G taken for Adagrad's sum);
    and a group key such as momentum, which add_param_group refuses, loaded with the entry
    and was ignored."""
    _model, opt = _trained("Adagrad")
    before = _snapshot(opt)
    with pytest.raises(CheckpointError, match=r"has \['gamma'\], which Adagrad does not take"):
        opt.load_state_dict(_stripped("RMSProp", steps=3))
    assert _same(opt.state_dict(), before)
    _model, momentum = _trained("Momentum")
    saved = _snapshot(momentum)
    saved["param_groups"][0]["momentum"] = 0.5
    with pytest.raises(CheckpointError, match=r"group 0 of the state has \['momentum'\]"):
        momentum.load_state_dict(saved)


def test_a_fused_state_into_an_optimizer_with_reduce_group_is_refused():
    """Regression (review): the constructor refuses fused=True with reduce_group, but a
    saved fused=True loaded, and the first step raised."""
    p = torch.zeros(2, requires_grad=True)
    saved = rt.NormalizedGD([p], fused=True).state_dict()
    opt = rt.NormalizedGD([p], reduce_group="world")
    with pytest.raises(CheckpointError, match="fused=True cannot take reduce_group='world'"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["fused"] is None


def test_fuzzed_state_dicts_never_half_load():
    """Random edits of a real state dict: each either loads completely or is refused with
    the optimizer unchanged (never another exception, never a partial load)."""
    rng = random.Random(0)
    _, opt = _trained("NAdam")
    good = _snapshot(opt)
    junk = [
        None,
        -1,
        1e300,
        float("nan"),
        "x",
        [],
        {},
        torch.zeros(3),
        torch.zeros(2, 2).long(),
        True,
    ]
    for trial in range(200):
        bad = copy.deepcopy(good)
        target = bad
        path = []
        while isinstance(target, dict | list) and target and rng.random() < 0.8:
            key = rng.choice(
                list(target.keys()) if isinstance(target, dict) else range(len(target))
            )
            path.append(key)
            if not isinstance(target[key], dict | list):
                break
            target = target[key]
        if not path:
            continue
        parent = bad
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = rng.choice(junk)
        before = _snapshot(opt)
        try:
            opt.load_state_dict(bad)
        except CheckpointError:  # the one error load_state_dict promises for a bad state
            assert _same(opt.state_dict(), before), (trial, path)
        opt.load_state_dict(good)


def test_io_buffer_save_load():
    _, opt = _trained("SGD")
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["ravine"] == {"format": 1, "optimizer": "SGD"}


@pytest.mark.parametrize("step", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_step_count_is_a_checkpoint_error(step):
    """Regression (review): round(nan) raised a plain ValueError and round(inf) an
    OverflowError, not the CheckpointError load_state_dict promises."""
    p = torch.zeros(3, requires_grad=True)
    opt = rt.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    bad = copy.deepcopy(opt.state_dict())
    bad["state"][0]["step"] = step
    with pytest.raises(CheckpointError, match="step must be a non-negative integer"):
        opt.load_state_dict(bad)
    assert opt.state[p]["step"] == 1


def test_a_group_added_after_a_reload_saves_and_loads():
    """Regression: torch's reload adds ``differentiable`` to the defaults, so later groups
    carry it; it is no sign of a torch.optim state."""
    _model, opt = _trained("Adam")
    opt.load_state_dict(_snapshot(opt))
    extra = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt.add_param_group({"params": [extra]})
    assert "differentiable" in opt.param_groups[1]
    saved = _snapshot(opt)
    opt.load_state_dict(saved)
    assert _same(opt.state_dict(), saved)
