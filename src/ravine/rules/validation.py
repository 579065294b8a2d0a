"""One place that checks hyperparameters, shared by every front-end.

Each hyperparameter has a :class:`Check`; a bad value raises ``ValueError`` (or
``TypeError`` for a wrong type) whose message names the optimizer, the argument, the value
and what would be valid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any


class Check:
    """A constraint on one hyperparameter."""

    def describe(self, name: str) -> str:
        raise NotImplementedError

    def normalize(self, owner: str, name: str, value: Any) -> Any:
        """Return the value to store, or raise naming owner, argument, value and valid range."""
        raise NotImplementedError

    def _fail(self, owner: str, name: str, value: Any) -> ValueError:
        return ValueError(f"{owner}: invalid {name}={value!r}; valid: {self.describe(name)}")


def _real(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        # a tensor or array (torch.optim takes a tensor lr): hyperparameters are read as
        # Python numbers at every step here, so say how to pass one
        hint = "; pass float(...) of it" if hasattr(value, "item") else ""
        raise TypeError(
            f"{owner}: {name} must be a real number, got {type(value).__name__} {value!r}{hint}"
        )
    return float(value)


@dataclass(frozen=True)
class Interval(Check):
    """low ≤ x ≤ high, with either end open."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def describe(self, name: str) -> str:
        parts = []
        if self.low > -math.inf:
            parts.append(f"{self.low:g} {'<' if self.low_open else '<='} ")
        parts.append(name)
        if self.high < math.inf:
            parts.append(f" {'<' if self.high_open else '<='} {self.high:g}")
        return "".join(parts) + " (a finite real number)"

    def normalize(self, owner: str, name: str, value: Any) -> Any:
        x = _real(owner, name, value)
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        if not (math.isfinite(x) and above and below):
            raise self._fail(owner, name, value)
        return x


@dataclass(frozen=True)
class OneOf(Check):
    """One of a few strings."""

    values: tuple[str, ...]

    def describe(self, name: str) -> str:
        return f"{name} in {{{', '.join(repr(v) for v in self.values)}}}"

    def normalize(self, owner: str, name: str, value: Any) -> Any:
        if value not in self.values:
            raise self._fail(owner, name, value)
        return value


@dataclass(frozen=True)
class Flag(Check):
    """True or False."""

    def describe(self, name: str) -> str:
        return f"{name} in {{True, False}}"

    def normalize(self, owner: str, name: str, value: Any) -> Any:
        if not isinstance(value, bool):
            raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
        return value


@dataclass(frozen=True)
class OrNone(Check):
    """None, or a value passing ``inner``."""

    inner: Check

    def describe(self, name: str) -> str:
        return f"None or {self.inner.describe(name)}"

    def normalize(self, owner: str, name: str, value: Any) -> Any:
        return None if value is None else self.inner.normalize(owner, name, value)


NON_NEGATIVE = Interval(0.0)
DECAY = Interval(0.0, 1.0, high_open=True)
"""A decay rate β or γ: 0 ≤ x < 1 (x = 1 would never forget and, debiased, divide by 0)."""


def validate(owner: str, checks: Mapping[str, Check], values: Mapping[str, Any]) -> dict[str, Any]:
    """Check every known hyperparameter in ``values``; reject unknown names.

    >>> validate("Adam", {"beta": DECAY}, {"beta": 0.9})
    {'beta': 0.9}
    >>> validate("Adam", {"beta": DECAY}, {"beta": 1.0})
    Traceback (most recent call last):
    ...
    ValueError: Adam: invalid beta=1.0; valid: 0 <= beta < 1 (a finite real number)
    """
    unknown = sorted(set(values) - set(checks))
    if unknown:
        raise TypeError(
            f"{owner}: unexpected argument(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(checks))}"
        )
    return {name: checks[name].normalize(owner, name, value) for name, value in values.items()}
