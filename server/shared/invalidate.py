"""A :class:`Store` that tells the cache about its writes: every write that can change a
cached answer bumps the generation of its namespace once it has returned (committed).

Only reads, id sequences, checkpoints, worker status, keys, the audit trail and
idempotency records leave the cache alone; any other method (a write added to the store
later included) bumps both namespaces, so a forgotten write costs cache hits, never
correctness. A failing cache never fails the write: it is logged and counted.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from server.shared.base import NAMESPACES, STATE, TELEMETRY, Cache, SharedStateError
from server.store.base import StateStore, Store

log = logging.getLogger("rca.shared")

_TELEMETRY_WRITES = frozenset({"insert_metrics", "insert_points", "insert_logs"})
_STATE_WRITES = frozenset({
    "upsert_changes", "add_edges", "save_anomalies", "save_incidents", "delete_incident", "record_merge",
    "replace_suspects", "add_label", "reassign_labels", "save_model", "upsert_alerts", "save_alerts"})
_NO_EFFECT = frozenset({
    "ping", "close", "store_uid", "next_id", "next_ids", "change_services", "merged_into",
    "save_checkpoint", "load_checkpoint", "list_checkpoints", "series_before_after", "log_pattern_counts",
    "save_api_key", "revoke_api_key", "count_active_api_keys", "add_audit", "get_idempotent", "save_idempotent",
    "append_journal", "journal_end", "trim_journal", "points_log_end"})
_READ_PREFIXES = ("get_", "list_", "load_", "count_", "iter_", "read_")


def namespaces_of(method: str) -> tuple[str, ...]:
    """The cache namespaces a store method changes (empty for reads)."""
    if method in _TELEMETRY_WRITES:
        return (TELEMETRY,)
    if method in _STATE_WRITES:
        return (STATE,)
    if method in _NO_EFFECT or method.startswith(_READ_PREFIXES) or method.startswith("_"):
        return ()
    return NAMESPACES


class InvalidatingStore:
    def __init__(self, inner: Store, cache: Cache, on_error: Callable[[], None] | None = None) -> None:
        self.inner = inner
        self.cache = cache
        self.on_error = on_error

    def bump(self, namespaces: tuple[str, ...]) -> None:
        try:
            self.cache.bump(namespaces)
        except SharedStateError as exc:  # answers cached now expire with their TTL
            log.warning("cache invalidation failed: %s", exc)
            if self.on_error is not None:
                self.on_error()

    @contextmanager
    def unit_of_work(self) -> Iterator[StateStore]:
        with self.inner.unit_of_work() as tx:
            yield tx
        self.bump(NAMESPACES)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):  # data: read through every time
            return attr
        spaces = namespaces_of(name)
        if not spaces:
            self.__dict__[name] = attr  # a read: the inner store's own method from now on
            return attr

        @functools.wraps(attr)
        def write(*args: Any, **kwargs: Any) -> Any:
            out = attr(*args, **kwargs)
            self.bump(spaces)
            return out

        self.__dict__[name] = write  # made once: the next lookup finds it without __getattr__
        return write


def invalidating(store: Store, cache: Cache, on_error: Callable[[], None] | None = None) -> Store:
    """``store`` whose writes invalidate ``cache`` (the store itself when nothing is cached)."""
    from server.shared.memory import NullCache

    if isinstance(cache, NullCache):
        return store
    return cast(Store, InvalidatingStore(store, cache, on_error))
