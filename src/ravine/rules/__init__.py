"""The specification: each optimizer's update rule, written once over an array namespace.

See :mod:`ravine.rules.common` for the notation and sign convention, and
:mod:`ravine.rules.registry` for the table of optimizers.
"""

from .registry import BY_NAME, SPECS, Hyperparameters, Spec, get

__all__ = ["BY_NAME", "SPECS", "Hyperparameters", "Spec", "get"]
