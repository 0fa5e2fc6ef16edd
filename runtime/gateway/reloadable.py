"""Files the gateway reloads on change (policies, pinned catalogs): the version in force,
the newest refusal, and a registry keyed by (server, path) loaded on first use.

A file that fails to load never replaces the one in force: the last good version keeps
deciding, and the failure shows in /healthz and the log.
"""

from __future__ import annotations

import abc
import os
import threading
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")  # what a loaded file holds


def stat_key(path: str):
    """What changes when a file is replaced or edited (None if it is gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileState(abc.ABC, Generic[T]):
    """One reloadable file. Subclasses implement `load() -> (ok, error)` and set `current`."""

    def __init__(self, server: str, path: str):
        self.server, self.path = server, path
        self.current: T | None = None
        self.error: str | None = None
        self.seen = None  # stat of the version last tried

    def mark_seen(self) -> None:
        self.seen = stat_key(self.path)

    def changed(self) -> bool:
        return stat_key(self.path) != self.seen

    @abc.abstractmethod
    def load(self) -> tuple[bool, str | None]:
        """Try the file as it is now; on success it replaces the version in force."""


S = TypeVar("S", bound="FileState[Any]")


class Registry(Generic[S]):
    """Every state in use, keyed by (server, path); created and loaded on first use."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], S] = {}
        self._lock = threading.Lock()

    def get_or_load(self, server: str, path: str, make: Callable[[], S]) -> tuple[S, bool]:
        """The state and whether this call created (and loaded) it."""
        key = (server, path)
        st = self.states.get(key)
        if st is not None:
            return st, False
        with self._lock:
            st = self.states.get(key)
            if st is None:
                st = make()
                st.load()
                self.states[key] = st
                return st, True
        return st, False

    def changed(self) -> list[S]:
        return [st for st in list(self.states.values()) if st.changed()]

    def retain(self, keys: set[tuple[str, str]]) -> None:
        """Forget files no server uses any more (after a config reload)."""
        for key in list(self.states):
            if key not in keys:
                self.states.pop(key, None)
