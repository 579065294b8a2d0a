"""Optimizer state that knows when someone else changed it.

The fused implementation caches, per param group, pointers to every state tensor. Any write
to the state from outside the engines — ``load_state_dict``, ``opt.state[p] = …``,
``opt.state[p]["m"] = …``, editing ``step`` — bumps :attr:`TrackedState.version`, which
makes the cache rebuild, so a stale pointer is never used. The engines' own per-step
writes go through :func:`put`, which does not count as a change.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import torch

_VERSIONS = itertools.count()
"""One counter for every store: a value is never repeated, not even by a new store that
replaces an old one (``load_state_dict`` does that)."""


class ParamState(dict[str, Any]):
    """One parameter's state; writes are reported to the owning :class:`TrackedState`."""

    def _changed(self) -> None:
        owner = getattr(self, "_owner", None)  # absent while unpickling
        if owner is not None:
            owner.version = next(_VERSIONS)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def pop(self, *args: Any) -> Any:
        self._changed()
        return super().pop(*args)

    def clear(self) -> None:
        super().clear()
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._changed()
        return super().setdefault(key, default)

    def popitem(self) -> tuple[str, Any]:
        self._changed()
        return super().popitem()

    def __ior__(self, other: Any) -> ParamState:  # type: ignore[override,misc]
        self.update(other)
        return self


class TrackedState(defaultdict):  # keys are tensors, values ParamState
    """``optimizer.state``: a ``defaultdict`` of :class:`ParamState` with a change counter."""

    def __init__(self, *args: Any) -> None:
        super().__init__(None, *args)
        self.version = next(_VERSIONS)
        for key, value in list(self.items()):
            self[key] = value  # adopt plain dicts (e.g. from load_state_dict)

    def __missing__(self, key: torch.Tensor) -> ParamState:
        value = ParamState()
        self[key] = value
        return value

    def __setitem__(self, key: torch.Tensor, value: Any) -> None:
        if not isinstance(value, ParamState):
            value = ParamState(value)
        value._owner = self
        super().__setitem__(key, value)
        self.version = next(_VERSIONS)

    def __delitem__(self, key: torch.Tensor) -> None:
        super().__delitem__(key)
        self.version = next(_VERSIONS)

    # every other way a dict changes counts too (the fused plan holds the state dicts)
    def clear(self) -> None:
        super().clear()
        self.version = next(_VERSIONS)

    def pop(self, *args: Any) -> Any:
        self.version = next(_VERSIONS)
        return super().pop(*args)

    def popitem(self) -> tuple[torch.Tensor, Any]:
        self.version = next(_VERSIONS)
        return super().popitem()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value  # wraps plain dicts, bumps the version
        self.version = next(_VERSIONS)

    def setdefault(self, key: torch.Tensor, default: Any = None) -> Any:
        if key not in self:
            self[key] = {} if default is None else default
        return self[key]

    def __ior__(self, other: Any) -> TrackedState:  # type: ignore[misc]
        self.update(other)
        return self

    def __reduce__(self) -> Any:  # pickle/deepcopy as plain data, re-wrapped on load
        return (TrackedState, (), None, None, iter((k, dict(v)) for k, v in self.items()))


put = dict.__setitem__
"""``put(state, key, value)``: an engine's own write, not a change anybody else made."""


class LazyStates(Sequence[dict[str, Any]]):
    """The states of a step's parameters, created (and looked up) only when read.

    The fused implementation reads them only when its cache is rebuilt; looking up 2000
    parameters' state every step costs about 1 ms of Python.
    """

    def __init__(self, store: TrackedState, params: Sequence[torch.Tensor], init: Any) -> None:
        self.store, self.params, self._init = store, params, init

    @property
    def version(self) -> int:
        return self.store.version

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._init(self.params[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self._init(p) for p in self.params)
