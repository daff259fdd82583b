from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer


@pytest.fixture(scope="package")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private real Redis for this package's tests."""
    with RedisServer(Path(tmp_path_factory.mktemp("redis"))) as srv:
        yield srv.url
