"""First two steps of every rule, computed by hand in float64 from the seed's formulas.

The gradients are a fixed sequence (g1, g2), so each expected value is plain scalar
arithmetic, written here independently of the rule code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ravine.numpy as rn
import ravine.torch as rt
from conftest import IMPLEMENTATIONS

THETA0 = (1.0, -2.0)
G1 = (0.5, -1.0)
G2 = (0.25, 2.0)
LR, BETA, GAMMA, EPS = 0.1, 0.8, 0.7, 1e-3  # non-defaults, so each must reach the rule


def _expected(name: str) -> tuple[list[float], list[float]]:
    """(θ after step 1, θ after step 2) per coordinate."""
    th1, th2 = [], []
    for i in range(2):
        x, g1, g2 = THETA0[i], G1[i], G2[i]
        if name == "SGD":
            a = x - LR * g1
            b = a - LR * g2
        elif name in ("Momentum", "NAG"):  # NAG's θ follows Momentum's recurrence
            m1 = (1 - BETA) * g1
            a = x - LR * m1
            m2 = BETA * m1 + (1 - BETA) * g2
            b = a - LR * m2
        elif name == "NormalizedGD":
            n1 = math.hypot(*G1)
            n2 = math.hypot(*G2)
            a = x - LR * g1 / n1
            b = a - LR * g2 / n2
        elif name == "Adagrad":
            G_1 = g1 * g1
            a = x - LR * g1 / math.sqrt(G_1 + EPS)
            G_2 = G_1 + g2 * g2
            b = a - LR * g2 / math.sqrt(G_2 + EPS)
        elif name == "RMSProp":
            G_1 = (1 - GAMMA) * g1 * g1
            a = x - LR * g1 / math.sqrt(G_1 + EPS)
            G_2 = GAMMA * G_1 + (1 - GAMMA) * g2 * g2
            b = a - LR * g2 / math.sqrt(G_2 + EPS)
        elif name == "AdaDelta":  # lr = 1: the seed has no learning rate
            G_1 = (1 - GAMMA) * g1 * g1
            d1 = -math.sqrt(0 + EPS) / math.sqrt(G_1 + EPS) * g1
            s1 = (1 - GAMMA) * d1 * d1
            a = x + d1
            G_2 = GAMMA * G_1 + (1 - GAMMA) * g2 * g2
            d2 = -math.sqrt(s1 + EPS) / math.sqrt(G_2 + EPS) * g2
            b = a + d2
        elif name == "Adam":
            m1, G_1 = (1 - BETA) * g1, (1 - GAMMA) * g1 * g1
            a = x - LR * (m1 / (1 - BETA)) / math.sqrt(G_1 / (1 - GAMMA) + EPS)
            m2, G_2 = BETA * m1 + (1 - BETA) * g2, GAMMA * G_1 + (1 - GAMMA) * g2 * g2
            b = a - LR * (m2 / (1 - BETA**2)) / math.sqrt(G_2 / (1 - GAMMA**2) + EPS)
        elif name == "NAdam":  # constant μ = β (Dozat without the schedule)
            m1, G_1 = (1 - BETA) * g1, (1 - GAMMA) * g1 * g1
            mhat1 = BETA * m1 / (1 - BETA**2) + (1 - BETA) * g1 / (1 - BETA)
            a = x - LR * mhat1 / math.sqrt(G_1 / (1 - GAMMA) + EPS)
            m2, G_2 = BETA * m1 + (1 - BETA) * g2, GAMMA * G_1 + (1 - GAMMA) * g2 * g2
            mhat2 = BETA * m2 / (1 - BETA**3) + (1 - BETA) * g2 / (1 - BETA**2)
            b = a - LR * mhat2 / math.sqrt(G_2 / (1 - GAMMA**2) + EPS)
        else:
            raise AssertionError(name)
        th1.append(a)
        th2.append(b)
    return th1, th2


def _hparams(name: str) -> dict[str, float]:
    spec_args = rn.OPTIMIZERS[name].spec.defaults
    chosen = {"lr": LR, "beta": BETA, "gamma": GAMMA, "eps": EPS}
    if name == "AdaDelta":
        chosen["lr"] = 1.0
    if name == "NormalizedGD":
        del chosen["eps"]  # the seed's g/‖g‖ has no ε
    return {k: v for k, v in chosen.items() if k in spec_args}


@pytest.mark.parametrize("name", list(rn.OPTIMIZERS))
def test_numpy_first_two_steps(name):
    opt = rn.OPTIMIZERS[name](**_hparams(name))
    params = np.array(THETA0)
    state = opt.init(params)
    expected = _expected(name)
    for g, want in zip((G1, G2), expected, strict=True):
        params, state = opt.update(params, np.array(g), state)
        np.testing.assert_allclose(opt.theta(params, state), want, rtol=1e-14, atol=0)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", list(rt.OPTIMIZERS))
def test_torch_first_two_steps(name, impl):
    p = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    opt = rt.OPTIMIZERS[name]([p], **IMPLEMENTATIONS[impl], **_hparams(name))
    for g, want in zip((G1, G2), _expected(name), strict=True):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        torch.testing.assert_close(
            opt.theta(p), torch.tensor(want, dtype=torch.float64), rtol=1e-14, atol=0
        )


def test_sign_convention_descends():
    """One step on f(x) = x² from x = 1 decreases x, for every optimizer."""
    for name, cls in rn.OPTIMIZERS.items():
        opt = cls()
        x = np.array([1.0])
        state = opt.init(x)
        x, state = opt.update(x, 2 * x, state)
        assert opt.theta(x, state)[0] < 1.0, name
