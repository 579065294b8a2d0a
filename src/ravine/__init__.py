"""ravine: momentum and adaptive optimizers, exactly as the seed defines them.

* :mod:`ravine.rules` — each update rule once, over an array namespace, and the registry;
* :mod:`ravine.numpy` — NumPy optimizers (pure ``init`` / ``update``);
* :mod:`ravine.torch` — ``torch.optim.Optimizer`` classes;
* :mod:`ravine.lab` — surfaces, runs, metrics and figures on pathological curvature.
"""

from .rules import SPECS, Spec

__version__ = "0.1.0"
__all__ = ["SPECS", "Spec", "__version__"]
