"""Property-based API tests: schemathesis generates requests from the live server's own
``/openapi.json`` (valid and invalid data, each operation alone and in sequences that
follow the document's links) and checks that no answer is a 5xx and every answer is
declared: its status code, its content type, its body schema and its headers.

Against a real embedded server (uvicorn, DuckDB file, in-process bus) seeded with a
replayed scenario (incidents, suspects, changes, logs), once running open on loopback
and once with API keys (an admin key, a read-only key, no key: so 401 and 403 are
exercised too). Deterministic (derandomized Hypothesis, no example database) and bounded
(examples per operation, steps per scenario) so the whole module takes a few minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis

from server.auth import new_key
from server.embedded import EmbeddedServer
from server.sim.replay import replay
from server.sim.scenario import generate_scenario
from server.store.duckdb import DuckDBStore

# What every answer must satisfy (the other checks, e.g. that the server accepts every
# schema-valid body, judge the strictness of validation, not the truth of the document).
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance"]
MAX_EXAMPLES = 10  # per operation (open server; fewer for the keyed runs)
STATEFUL_SCENARIOS = 40
STATEFUL_STEPS = 8
# Protobuf bodies (remote-write, OTLP) are sent as the arbitrary bytes the document allows.
schemathesis.serializer.alias(["application/x-protobuf", "application/protobuf"], "application/octet-stream")


def config(headers: dict[str, str] | None = None, max_examples: int = MAX_EXAMPLES) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "suppress-health-check": ["all"],
        "request-timeout": 60,
        "headers": headers or {},
        "generation": {"max-examples": max_examples, "deterministic": True, "database": "none",
                       "with-security-parameters": False},
        "checks": {"enabled": False, **{c: {"enabled": True} for c in CHECKS}},
        "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
    })


def load(srv: EmbeddedServer, headers: dict[str, str] | None = None,
         max_examples: int = MAX_EXAMPLES) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(srv.url + "/openapi.json", config=config(headers, max_examples))


def seed(srv: EmbeddedServer) -> None:
    replay(generate_scenario(7, kind="mixed", history_hours=2.0, n_services=5), srv.url)  # waits until processed


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    # Open as on loopback before the first key, and kept open (auth off): the keys that
    # POST /admin/keys creates would otherwise close it for the operations tested after.
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("st-open"), auth={"mode": "off"}) as srv:
        seed(srv)
        yield srv


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedServer, dict[str, str]]]:
    data: Path = tmp_path_factory.mktemp("st-keyed")
    store = DuckDBStore(data / "rca.duckdb")
    keys = {}
    for role in ("admin", "read"):
        secret, key = new_key(name=f"{role}-st", roles=[role], now=time.time())
        store.save_api_key(key=key)
        keys[role] = secret
    store.close()
    with EmbeddedServer(data_dir=data) as srv, httpx.Client(base_url=srv.url, timeout=60,
                                                           headers=_bearer(keys["admin"])) as admin:
        replay(generate_scenario(7, kind="mixed", history_hours=2.0, n_services=5), admin)
        yield srv, keys


def _bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


@pytest.fixture
def open_schema(open_server: EmbeddedServer) -> schemathesis.BaseSchema:
    return load(open_server)


@pytest.fixture
def admin_schema(keyed_server: tuple[EmbeddedServer, dict[str, str]]) -> schemathesis.BaseSchema:
    srv, keys = keyed_server
    return load(srv, _bearer(keys["admin"]), max_examples=6)


@pytest.fixture
def read_key_schema(keyed_server: tuple[EmbeddedServer, dict[str, str]]) -> schemathesis.BaseSchema:
    srv, keys = keyed_server
    return load(srv, _bearer(keys["read"]), max_examples=3)


@pytest.fixture
def no_key_schema(keyed_server: tuple[EmbeddedServer, dict[str, str]]) -> schemathesis.BaseSchema:
    srv, _ = keyed_server
    return load(srv, max_examples=2)


def _undecodable(response: schemathesis.Response) -> bool:
    """FastAPI decodes a model body before it checks the key: a body that is not JSON gets
    400 or 422 (json_invalid) first, whoever sends it."""
    if response.status_code == 400:
        return True
    detail = response.json().get("detail") if response.status_code == 422 else None
    return isinstance(detail, list) and bool(detail) and detail[0].get("type") == "json_invalid"


def _as_declared(case: schemathesis.Case) -> bool:
    """The request uses the operation's own method (some generated cases try others: 405)."""
    return case.method.upper() == case.operation.method.upper()


@schemathesis.pytest.from_fixture("open_schema").parametrize()
def test_open_server_answers_only_as_declared(case: schemathesis.Case) -> None:
    case.call_and_validate()


@schemathesis.pytest.from_fixture("admin_schema").parametrize()
def test_keyed_server_answers_an_admin_only_as_declared(case: schemathesis.Case) -> None:
    case.call_and_validate()


@schemathesis.pytest.from_fixture("read_key_schema").include(method=["POST", "DELETE"]).parametrize()
def test_keyed_server_refuses_writes_with_a_read_key_as_declared(case: schemathesis.Case) -> None:
    response = case.call_and_validate()
    if _as_declared(case) and not case.operation.path.startswith("/ingest/webhooks/"):
        assert response.status_code == 403 or _undecodable(response), response.text


@schemathesis.pytest.from_fixture("no_key_schema").parametrize()
def test_keyed_server_refuses_requests_without_a_key_as_declared(case: schemathesis.Case) -> None:
    response = case.call_and_validate()
    if _as_declared(case) and case.operation.path != "/health" and not case.operation.path.startswith("/ingest/webhooks/"):
        assert response.status_code == 401 or _undecodable(response), response.text


def _run_stateful(schema: schemathesis.BaseSchema, srv: EmbeddedServer | None = None) -> set[tuple[str, str, int]]:
    """Run the scenarios; returns every (method, path, status) answered. With ``srv`` (a
    keyed server) each scenario gets a new admin key: a scenario may revoke its own."""
    seen: set[tuple[str, str, int]] = set()

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            self.headers: dict[str, str] = {}
            if srv is not None:
                state = srv.app.state.rca
                secret, key = new_key(name="st-scenario", roles=["admin"], now=time.time())
                state.store.save_api_key(key=key)
                state.keys.invalidate()
                self.headers = _bearer(secret)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": self.headers}

        def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            seen.add((case.method.upper(), case.operation.path, response.status_code))

    Machine.run(settings=hypothesis.settings(
        max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS, derandomize=True, database=None,
        deadline=None, suppress_health_check=list(hypothesis.HealthCheck), print_blob=False))
    return seen


def _followed_links(seen: set[tuple[str, str, int]]) -> set[str]:
    """Operations on one item (an id in the path) that answered 2xx: only an id taken from
    an earlier answer through a link finds an item (a generated id never does)."""
    return {f"{m} {p}" for m, p, status in seen if "{" in p and 200 <= status < 300}


def test_open_server_sequences_follow_the_links(open_schema: schemathesis.BaseSchema) -> None:
    seen = _run_stateful(open_schema)
    assert len(_followed_links(seen)) >= 4, "\n".join(map(str, sorted(seen)))


def test_keyed_server_sequences_follow_the_links(keyed_server: tuple[EmbeddedServer, dict[str, str]]) -> None:
    srv, _ = keyed_server
    seen = _run_stateful(load(srv), srv)
    assert len(_followed_links(seen)) >= 4, "\n".join(map(str, sorted(seen)))
