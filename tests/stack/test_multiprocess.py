"""Stack mode as separate OS processes on a real Kafka broker and a real PostgreSQL: the
API, two detector workers, one grouping worker and one RCA worker give the same incidents
and top suspects as the embedded default on the same replayed scenario; a detector worker
killed with SIGKILL mid-stream loses no acknowledged point and duplicates no anomaly or
incident; a third detector worker started mid-stream takes over partitions."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.embedded import EmbeddedServer
from server.sim.replay import get_suspects, list_incidents, replay
from server.sim.scenario import Scenario, generate_scenario
from tests.kafka_broker import kafka_bootstrap
from tests.stack.harness import Stack

pytestmark = pytest.mark.slow
SEED = 11
PARTITIONS = 4


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate_scenario(SEED, kind="deployment", history_hours=1.5, n_services=6)


def outcome(url: str) -> tuple[list[tuple[Any, ...]], Counter[tuple[str, str, str]], int]:
    """Incidents as (services, start, status, anomaly count, top suspect's change), every
    anomaly's (service, metric, onset), and the number of stored points."""
    with httpx.Client(base_url=url, timeout=30) as c:
        incs = []
        anomalies: Counter[tuple[str, str, str]] = Counter()
        for inc in list_incidents(c):
            sus = get_suspects(c, inc["id"])
            top = inc["top_suspect"]["change_id"] if inc.get("top_suspect") else None
            incs.append((tuple(sorted(inc["services"])), inc["started_at"], inc["status"], inc["anomaly_count"],
                         top, sus[0]["change_id"] if sus else None))
            for a in c.get(f"/incidents/{inc['id']}/anomalies").json():
                anomalies[(a["service"], a["metric"], a["started_at"])] += 1
        points = sum(s["points"] for s in c.get("/services/metrics").json())
    return sorted(incs), anomalies, points


@pytest.fixture(scope="module")
def embedded(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    with EmbeddedServer(data_dir=tmp_path_factory.mktemp("embedded")) as srv:
        replay(scenario, srv.url, timeout=300)
        return outcome(srv.url)


def halves(sc: Scenario) -> tuple[Scenario, Scenario]:
    mid = sc.start + (sc.end - sc.start) * 0.55

    def part(first: bool) -> Scenario:
        def keep(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [x for x in items if (float(x["ts"]) < mid) == first]
        return dataclasses.replace(sc, metrics=keep(sc.metrics), logs=keep(sc.logs), changes=keep(sc.changes),
                                   start=sc.start if first else mid, end=mid if first else sc.end)
    return part(True), part(False)


@pytest.fixture
def stack(pg_database: str, tmp_path: Path) -> Any:
    with Stack(bootstrap=kafka_bootstrap(), dsn=pg_database, data_dir=tmp_path / "stack",
               partitions=PARTITIONS) as s:
        s.start_api()
        yield s


def _same(embedded: tuple[Any, ...], stacked: tuple[Any, ...], n_points: int) -> None:
    e_incs, e_anoms, e_points = embedded
    s_incs, s_anoms, s_points = stacked
    assert e_points == n_points and s_points == n_points  # every accepted point stored
    assert e_incs, "the scenario's regression should open an incident"
    assert s_incs == e_incs  # same incidents, same anomaly counts, same top suspects
    assert s_anoms == e_anoms and max(s_anoms.values()) == 1  # no anomaly twice


def test_separate_processes_match_the_embedded_mode(stack: Stack, scenario: Scenario,
                                                     embedded: tuple[Any, ...]) -> None:
    for name, stage in (("d1", "detector"), ("d2", "detector"), ("grouping", "grouping"), ("rca", "rca")):
        stack.start_worker(stage, name)
    h = stack.wait_workers("detector", 2, owning=PARTITIONS)
    stack.wait_workers("grouping", 1)
    stack.wait_workers("rca", 1)
    assert len(h["stages"]["detector"]["assignments"]) == 2  # the partitions are spread over both
    replay(scenario, stack.url, timeout=300)
    h = stack.health()
    assert h["pending"] == 0 and all(s["lag"] == 0 for s in h["stages"].values())
    _same(embedded, outcome(stack.url), len(scenario.metrics))


def test_a_detector_killed_mid_stream_loses_and_duplicates_nothing(stack: Stack, scenario: Scenario,
                                                                     embedded: tuple[Any, ...]) -> None:
    for name, stage in (("d1", "detector"), ("d2", "detector"), ("grouping", "grouping"), ("rca", "rca")):
        stack.start_worker(stage, name)
    stack.wait_workers("detector", 2, owning=PARTITIONS)
    first, second = halves(scenario)
    replay(first, stack.url, wait=False)
    stack.kill("d1")  # mid-stream (its backlog not yet detected): no checkpoint, no commit
    stack.start_worker("detector", "d1-restarted")
    replay(second, stack.url, wait=False)
    stack.wait_workers("detector", 2, owning=PARTITIONS)
    replay(dataclasses.replace(scenario, metrics=[], logs=[], changes=[]), stack.url, timeout=300)  # wait idle
    _same(embedded, outcome(stack.url), len(scenario.metrics))


def test_a_third_detector_started_mid_stream_takes_over_partitions(stack: Stack, scenario: Scenario,
                                                                     embedded: tuple[Any, ...]) -> None:
    for name, stage in (("d1", "detector"), ("d2", "detector"), ("grouping", "grouping"), ("rca", "rca")):
        stack.start_worker(stage, name)
    stack.wait_workers("detector", 2, owning=PARTITIONS)
    first, second = halves(scenario)
    replay(first, stack.url, wait=False)
    stack.start_worker("detector", "d3")
    h = stack.wait_workers("detector", 3, owning=PARTITIONS)
    assert h["stages"]["detector"]["assignments"]["d3"], "the new worker owns a partition"
    replay(second, stack.url, timeout=300)
    _same(embedded, outcome(stack.url), len(scenario.metrics))
