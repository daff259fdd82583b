"""One conformance suite for the shared-state backends (server/shared): the in-process
limiter and cache of the embedded default and the Redis ones of the stack (a real
redis-server), with the same behaviour; the Redis ones also share one budget and one
cache between instances (processes), the in-process ones by design do not."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.shared.base import STATE, TELEMETRY, Cache, RateLimiter, SharedStateError
from server.shared.memory import MemoryCache, MemoryRateLimiter
from server.shared.redis import RedisCache, RedisRateLimiter


@dataclass
class Backend:
    name: str
    limiter: Callable[[dict[str, str]], RateLimiter]
    cache: Callable[[float], Cache]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    prefix = f"t{uuid.uuid4().hex[:8]}"  # one namespace of keys per test
    if request.param == "memory":
        return Backend("memory", lambda lim: MemoryRateLimiter(lim),
                       lambda ttl: MemoryCache(ttl_seconds=ttl, max_entries=64))
    url = request.getfixturevalue("redis_url")
    return Backend("redis", lambda lim: RedisRateLimiter(url, lim, prefix=prefix),
                   lambda ttl: RedisCache(url, prefix=prefix, ttl_seconds=ttl))


# ---- rate limits ---------------------------------------------------------------------------

async def test_allows_up_to_the_limit_then_refuses_with_retry_after(backend: Backend) -> None:
    lim = backend.limiter({"ingest": "3/minute"})
    assert lim.limited("ingest")
    got = [await lim.hit("ingest", "c1") for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    refused = got[-1]
    assert 0 < refused.retry_after <= 60
    assert refused.limit == "3 per 1 minute"


async def test_clients_and_scopes_have_their_own_budgets(backend: Backend) -> None:
    lim = backend.limiter({"ingest": "2/minute", "query": "1/minute"})
    assert [(await lim.hit("ingest", "a")).allowed for _ in range(3)] == [True, True, False]
    assert (await lim.hit("ingest", "b")).allowed  # another client
    assert (await lim.hit("query", "a")).allowed  # another scope
    assert not (await lim.hit("query", "a")).allowed


async def test_a_scope_without_limits_always_allows(backend: Backend) -> None:
    lim = backend.limiter({"ingest": "1/minute", "query": ""})
    assert not lim.limited("query")
    assert all([(await lim.hit("query", "a")).allowed for _ in range(50)])


async def test_the_stricter_of_several_limits_refuses(backend: Backend) -> None:
    lim = backend.limiter({"ingest": "100/second;3/minute"})
    got = [await lim.hit("ingest", "a") for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    assert got[-1].limit == "3 per 1 minute"


async def test_the_budget_comes_back_after_retry_after(backend: Backend) -> None:
    lim = backend.limiter({"ingest": "2 per 1 second"})
    assert (await lim.hit("ingest", "a")).allowed and (await lim.hit("ingest", "a")).allowed
    refused = await lim.hit("ingest", "a")
    assert not refused.allowed and 0 < refused.retry_after <= 1.0
    await asyncio.sleep(refused.retry_after + 0.1)
    assert (await lim.hit("ingest", "a")).allowed


async def test_two_instances_share_one_budget_only_on_a_shared_backend(backend: Backend) -> None:
    a, b = backend.limiter({"ingest": "4/minute"}), backend.limiter({"ingest": "4/minute"})
    for lim in (a, b, a, b):
        assert (await lim.hit("ingest", "c")).allowed
    fifth = await b.hit("ingest", "c")
    assert a.shared == b.shared == (backend.name == "redis")
    # shared: the fifth request of the client is over the one budget; per process: b has room
    assert fifth.allowed is (not b.shared)


# ---- cache ---------------------------------------------------------------------------------

def test_a_stored_answer_is_served_until_a_write_to_its_namespace(backend: Backend) -> None:
    cache = backend.cache(60.0)
    token, hit = cache.lookup([STATE], "incidents")
    assert hit is None
    cache.store(token, "incidents", b"[1]")
    assert cache.lookup([STATE], "incidents")[1] == b"[1]"
    cache.bump([TELEMETRY])  # another namespace: still served
    assert cache.lookup([STATE], "incidents")[1] == b"[1]"
    cache.bump([STATE])
    assert cache.lookup([STATE], "incidents")[1] is None


def test_an_answer_over_two_namespaces_is_dropped_by_a_write_to_either(backend: Backend) -> None:
    cache = backend.cache(60.0)
    for ns in (STATE, TELEMETRY):
        token, _ = cache.lookup([STATE, TELEMETRY], "services")
        cache.store(token, "services", b"x")
        assert cache.lookup([STATE, TELEMETRY], "services")[1] == b"x"
        cache.bump([ns])
        assert cache.lookup([STATE, TELEMETRY], "services")[1] is None


def test_an_answer_computed_before_a_write_is_never_served_after_it(backend: Backend) -> None:
    cache = backend.cache(60.0)
    token, _ = cache.lookup([STATE], "k")  # a reader starts computing ...
    cache.bump([STATE])  # ... a write lands meanwhile ...
    cache.store(token, "k", b"old")  # ... and the reader files its (older) answer
    assert cache.lookup([STATE], "k")[1] is None


def test_answers_expire_after_the_ttl(backend: Backend) -> None:
    cache = backend.cache(0.3)
    token, _ = cache.lookup([STATE], "k")
    cache.store(token, "k", b"v")
    assert cache.lookup([STATE], "k")[1] == b"v"
    time.sleep(0.5)
    assert cache.lookup([STATE], "k")[1] is None


def test_long_keys_and_binary_answers(backend: Backend) -> None:
    cache = backend.cache(60.0)
    key = "incidents?" + "x" * 500
    token, _ = cache.lookup([STATE], key)
    cache.store(token, key, bytes(range(256)))
    assert cache.lookup([STATE], key)[1] == bytes(range(256))
    assert cache.lookup([STATE], key[:-1])[1] is None


def test_two_instances_share_answers_and_writes_only_on_a_shared_backend(backend: Backend) -> None:
    a, b = backend.cache(60.0), backend.cache(60.0)
    token, _ = a.lookup([STATE], "k")
    a.store(token, "k", b"v")
    assert a.shared == b.shared == (backend.name == "redis")
    assert (b.lookup([STATE], "k")[1] == b"v") is a.shared
    b.bump([STATE])  # a write in another process
    assert (a.lookup([STATE], "k")[1] is None) is a.shared


# ---- failures ------------------------------------------------------------------------------

async def test_an_unreachable_redis_is_a_shared_state_error(tmp_path: Path) -> None:
    from server.embedded import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with pytest.raises(SharedStateError):
        RedisCache(url, timeout=0.2).lookup([STATE], "k")
    with pytest.raises(SharedStateError):
        await RedisRateLimiter(url, {"ingest": "1/second"}, timeout=0.2).hit("ingest", "a")


def test_the_in_process_cache_keeps_within_its_entry_and_byte_bounds() -> None:
    cache = MemoryCache(ttl_seconds=60, max_entries=3, max_bytes=100)
    for i in range(5):
        token, _ = cache.lookup([STATE], f"k{i}")
        cache.store(token, f"k{i}", b"x" * 10)
    assert [cache.lookup([STATE], f"k{i}")[1] is not None for i in range(5)] == [False, False, True, True, True]
    token, _ = cache.lookup([STATE], "big")
    cache.store(token, "big", b"y" * 60)
    cache.store(token, "big2", b"z" * 60)  # 120 bytes over the bound: the least recently used go
    assert cache.lookup([STATE], "big")[1] is None and cache.lookup([STATE], "big2")[1] == b"z" * 60
    cache.store(token, "huge", b"h" * 101)  # larger than the whole cache: not kept
    assert cache.lookup([STATE], "huge")[1] is None
