"""Helpers every rule shares: the exponential average, bias correction and the ε-root.

Notation, used by every docstring and by the code alike (the seed's symbols):

====== ================================================ ==================
symbol meaning                                          argument / field
====== ================================================ ==================
θ      parameters                                       ``theta`` / ``p``
g      mini-batch gradient (mean over the batch) at θ   ``g``
t      step count, 1 on the first step                  ``t``
α      learning rate                                    ``lr``
β      momentum decay                                   ``beta``
γ      second-moment decay                              ``gamma``
ε      numerical guard                                  ``eps``
m      momentum (EMA of g)                              ``m``
G      second moment (sum or EMA of g⊙g)                ``G``
s      EMA of squared updates (AdaDelta)                ``s``
====== ================================================ ==================

Sign convention: a rule returns a *direction* d; the one place that moves parameters,
:func:`ravine.rules.step.update`, does ``θ ← θ − lr·d``.
"""

from __future__ import annotations

from typing import Literal

from ._xp import Array, namespace

EpsMode = Literal["inside", "outside"]
EPS_MODES: tuple[str, ...] = ("inside", "outside")
"""Where ε sits: ``inside`` the root, √(G + ε) (the seed, optax's default, Keras),
or ``outside``, √G + ε (torch.optim)."""


def ema(average: Array, x: Array, decay: float) -> Array:
    """Exponential moving average: ``decay·average + (1 − decay)·x``."""
    return average * decay + x * (1 - decay)


def debias(average: Array, decay: float, t: int) -> Array:
    """Bias correction of an EMA started at zero: ``average / (1 − decayᵗ)``."""
    return average / (1 - decay**t)


def root(G: Array, eps: float, eps_mode: str) -> Array:
    """The adaptive denominator: ``√(G + ε)`` (inside) or ``√G + ε`` (outside)."""
    xp = namespace(G)
    if eps_mode == "inside":
        return xp.sqrt(G + eps)
    return xp.sqrt(G) + eps
