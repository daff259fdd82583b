"""Writes through the store invalidate the cached answers that they can change (a real
DuckDB store and the in-process cache); reads, checkpoints and id sequences do not."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from server.model import Change, Label
from server.settings import Settings
from server.shared.base import NAMESPACES, STATE, TELEMETRY
from server.shared.invalidate import InvalidatingStore, invalidating, namespaces_of
from server.shared.memory import MemoryCache, NullCache
from server.store import factory


def _cached(cache: MemoryCache, spaces: tuple[str, ...]) -> str:
    token, _ = cache.lookup(spaces, "answer")
    cache.store(token, "answer", b"1")
    return token


def _alive(cache: MemoryCache, spaces: tuple[str, ...]) -> bool:
    return cache.lookup(spaces, "answer")[1] is not None


@pytest.fixture
def store_and_cache(tmp_path: Path) -> tuple[InvalidatingStore, MemoryCache]:
    cache = MemoryCache(ttl_seconds=60)
    inner = factory.build_store(Settings(data_dir=tmp_path))
    store = invalidating(inner, cache)
    assert isinstance(store, InvalidatingStore)
    yield store, cache
    store.close()


def test_state_writes_drop_state_answers_only(store_and_cache: tuple[InvalidatingStore, MemoryCache]) -> None:
    store, cache = store_and_cache
    _cached(cache, (STATE,))
    _cached(cache, (TELEMETRY,))
    store.upsert_changes(changes=[Change(id="dep-1", kind="deployment", services=["api"], ts=time.time())])
    assert not _alive(cache, (STATE,)) and _alive(cache, (TELEMETRY,))
    _cached(cache, (STATE,))
    store.add_label(label=Label(id="lbl-1", incident_id="inc-1", change_id="dep-1", verdict="cause",
                                created_at=time.time()))
    assert not _alive(cache, (STATE,))


def test_metric_writes_drop_telemetry_answers_only(store_and_cache: tuple[InvalidatingStore, MemoryCache]) -> None:
    store, cache = store_and_cache
    _cached(cache, (STATE,))
    _cached(cache, (TELEMETRY,))
    store.insert_metrics(table=pa.table({"service": ["api"], "metric": ["p95"], "ts": [1.0e9], "value": [1.0],
                                         "labels": pa.array([None], pa.string())}))
    assert _alive(cache, (STATE,)) and not _alive(cache, (TELEMETRY,))


def test_reads_checkpoints_and_ids_leave_answers_alone(store_and_cache: tuple[InvalidatingStore, MemoryCache]) -> None:
    store, cache = store_and_cache
    _cached(cache, NAMESPACES)
    store.list_incidents()
    store.list_services()
    store.next_id(prefix="inc")
    store.save_checkpoint(stage="detector", partition=0, offset=3, state=b"s")
    assert _alive(cache, NAMESPACES)


def test_a_unit_of_work_drops_answers_when_it_commits_not_when_it_fails(
        store_and_cache: tuple[InvalidatingStore, MemoryCache]) -> None:
    store, cache = store_and_cache
    _cached(cache, (STATE,))
    with pytest.raises(RuntimeError), store.unit_of_work() as tx:
        tx.record_merge(merged="inc-2", into="inc-3")
        raise RuntimeError("rolled back")
    assert _alive(cache, (STATE,))
    with store.unit_of_work() as tx:
        tx.record_merge(merged="inc-2", into="inc-3")
    assert not _alive(cache, (STATE,))


def test_unknown_methods_count_as_writes_to_everything() -> None:
    assert namespaces_of("some_new_write") == NAMESPACES
    assert namespaces_of("list_something_new") == ()
    assert namespaces_of("save_checkpoint") == ()


def test_no_cache_no_wrapper(tmp_path: Path) -> None:
    inner = factory.build_store(Settings(data_dir=tmp_path))
    try:
        assert invalidating(inner, NullCache()) is inner
    finally:
        inner.close()
