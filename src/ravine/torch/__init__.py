"""PyTorch front-end: ``torch.optim.Optimizer`` classes for the seed's optimizers.

>>> import torch
>>> from ravine.torch import Adam
>>> model = torch.nn.Linear(3, 1)
>>> opt = Adam(model.parameters(), lr=1e-2)
>>> loss = model(torch.ones(2, 3)).pow(2).mean()
>>> loss.backward()
>>> opt.step()
"""

from . import checkpoint
from .checkpoint import CheckpointError
from .convert import from_torch, to_torch
from .optimizer import Optimizer
from .optimizers import (
    NAG,
    OPTIMIZERS,
    SGD,
    AdaDelta,
    Adagrad,
    Adam,
    Momentum,
    NAdam,
    NormalizedGD,
    RMSProp,
)

__all__ = [
    "NAG",
    "OPTIMIZERS",
    "SGD",
    "AdaDelta",
    "Adagrad",
    "Adam",
    "CheckpointError",
    "Momentum",
    "NAdam",
    "NormalizedGD",
    "Optimizer",
    "RMSProp",
    "checkpoint",
    "from_torch",
    "to_torch",
]
