"""The one registry of declared kinds (device kinds, workloads): a table keyed by name that each
kind's module fills once, closed when the scenario builds its types from it.

:mod:`vbench.devices` and :mod:`vbench.workloads` each hold one :class:`Registry`; a kind's module
ends with ``DEVICE = ...`` / ``WORKLOAD = ...`` and its package's ``MODULES`` table names it.
"""

from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterable, Mapping, Protocol, TypeVar


class Declared(Protocol):
    def validate_declaration(self) -> None:
        """Raise TypeError when the declaration contradicts itself."""


K = TypeVar("K", bound=Declared)


class Registry(Generic[K]):
    """Kinds by name (``what``: "device", "workload"), in registration order.

    :meth:`register` checks a kind's declaration and ``check(kind, kinds so far)`` (what it needs
    of the kinds before it), then refuses a second kind of the same name and, once :meth:`freeze`
    has been called (by ``vbench.scenario.schema``, which builds its models once), any new kind."""

    def __init__(self, what: str, package: str, name_of: Callable[[K], str],
                 check: Callable[[K, Mapping[str, K]], None] | None = None) -> None:
        self.what, self.package, self.name_of, self.check = what, package, name_of, check
        self.kinds: dict[str, K] = {}
        self.frozen = False

    def register(self, kind: K) -> K:
        kind.validate_declaration()
        if self.check is not None:
            self.check(kind, self.kinds)
        name = self.name_of(kind)
        if name in self.kinds:
            raise TypeError(f"{self.what} {name} is registered twice")
        if self.frozen:
            raise RuntimeError(f"{self.what} {name}: register {self.what}s before "
                               f"vbench.scenario.schema is imported (add it to "
                               f"{self.package}.MODULES)")
        self.kinds[name] = kind
        return kind

    def load(self, modules: Iterable[str], attr: str) -> None:
        """Import ``package.NAME`` for each name and register its ``attr`` (``DEVICE``, ...)."""
        for name in modules:
            self.register(getattr(importlib.import_module(f"{self.package}.{name}"), attr))

    def freeze(self) -> dict[str, K]:
        """The table, closed to new kinds (``scenario`` has built its types from it)."""
        self.frozen = True
        return self.kinds
