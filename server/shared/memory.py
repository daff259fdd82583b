"""In-process rate limits and cache (the embedded default): one budget and one cache per
process. The cache is coherent only while every writer runs in this process (role
``all``), which is why the factory turns it off for ``--role api`` without Redis."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from limits.aio.storage import MemoryStorage

from server.shared.limiting import WindowLimiter


class MemoryRateLimiter(WindowLimiter):
    shared = False

    def __init__(self, limits: dict[str, str]) -> None:
        super().__init__(MemoryStorage(), limits)


class MemoryCache:
    shared = False

    def __init__(self, *, ttl_seconds: float, max_entries: int = 1024, max_bytes: int = 64 << 20) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self._gens: dict[str, int] = {}
        self._entries: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()

    def lookup(self, namespaces: Sequence[str], key: str) -> tuple[str, bytes | None]:
        with self._lock:
            token = ".".join(str(self._gens.get(ns, 0)) for ns in namespaces)
            entry = self._entries.get((token, key))
            if entry is None:
                return token, None
            expires, value = entry
            if expires < time.monotonic():
                self._drop((token, key))
                return token, None
            self._entries.move_to_end((token, key))
            return token, value

    def _drop(self, k: tuple[str, str]) -> None:
        _, value = self._entries.pop(k)
        self._bytes -= len(value)

    def store(self, token: str, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        with self._lock:
            if (token, key) in self._entries:
                self._drop((token, key))
            self._entries[(token, key)] = (time.monotonic() + self.ttl, value)
            self._bytes += len(value)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))  # least recently used first

    def bump(self, namespaces: Sequence[str]) -> None:
        with self._lock:
            for ns in namespaces:
                self._gens[ns] = self._gens.get(ns, 0) + 1

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


class NullCache:
    """No cache: every lookup misses, nothing is kept."""

    shared = True

    def lookup(self, namespaces: Sequence[str], key: str) -> tuple[str, bytes | None]:
        return "", None

    def store(self, token: str, key: str, value: bytes) -> None:
        return None

    def bump(self, namespaces: Sequence[str]) -> None:
        return None

    def close(self) -> None:
        return None
