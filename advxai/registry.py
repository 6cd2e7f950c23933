"""Registries turn names (what crosses the papermill boundary) into objects.

One small class serves data sets, models, attacks and interpreters. An unknown name fails at once
with the list of valid names; every entry carries a one-line description for ``advxai list``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Registry", "Entry"]


@dataclass
class Entry:
    name: str
    factory: Callable[..., Any]
    description: str = ""
    raw_meta: dict = field(default_factory=dict)  # values, or callables that compute them

    @property
    def meta(self) -> dict:
        """The entry's metadata as of now: a callable value is called on every read.

        A data set's tier can depend on what is installed (``mnist`` is embedded once fetched), so
        ``advxai list`` shows the state of the machine it runs on, not of the moment of import.
        """
        return {k: (v() if callable(v) else v) for k, v in self.raw_meta.items()}


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, description: str = "", **meta) -> Callable:
        """Decorator: ``@DATASETS.register("digits", "scikit-learn's handwritten digits")``.

        A ``meta`` value may be a function of no arguments, evaluated each time the entry's
        ``meta`` is read (``tier=mnist_tier``).
        """

        def wrap(factory: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = Entry(name, factory, description, meta)
            return factory

        return wrap

    def check(self, name: str) -> Entry:
        """The entry for ``name``, or a ``ValueError`` naming every valid choice."""
        if not isinstance(name, str) or name not in self._entries:
            hint = difflib.get_close_matches(str(name), self.names(), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"unknown {self.kind} {name!r}{extra}; valid: {', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str, *args, **kwargs) -> Any:
        return self.check(name).factory(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self.names())
