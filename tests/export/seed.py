"""Seed a real server with labelled incident history: simulated scenarios (each on its
own day, replayed in event-time order over HTTP like any client) whose culprits an
analyst then labels through ``POST /incidents/{id}/label``."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from server.sim.replay import get_suspects, list_incidents, matching_incidents, replay, wait_idle
from server.sim.scenario import Scenario, generate_scenario

# Fresh seeds (never used for tuning: those are 1000-1999), one per culprit kind.
SEEDS: tuple[tuple[int, str], ...] = ((70011, "deployment"), (70012, "config_change"), (70013, "flag_change"),
                                      (70014, "deployment"))


@dataclass(slots=True)
class Seeded:
    scenarios: list[Scenario]
    labelled: dict[str, str] = field(default_factory=dict)  # incident id -> culprit change id
    not_cause: dict[str, str] = field(default_factory=dict)


def seed_history(client: httpx.Client, seeds: tuple[tuple[int, str], ...] = SEEDS) -> Seeded:
    scenarios = sorted((generate_scenario(s, kind=k) for s, k in seeds), key=lambda sc: sc.start)
    for sc in scenarios:  # later days after earlier ones: event time only moves forward
        replay(sc, client, timeout=300)
    out = Seeded(scenarios)
    incs = list_incidents(client, limit=10_000)
    for sc in scenarios:
        matched = matching_incidents(incs, sc.truth)
        if not matched or sc.truth.culprit_id is None:
            continue
        inc = min(matched, key=lambda i: i["started_at"])
        r = client.post(f"/incidents/{inc['id']}/label",
                        json={"change_id": sc.truth.culprit_id, "verdict": "cause", "author": "analyst"})
        r.raise_for_status()
        out.labelled[inc["id"]] = sc.truth.culprit_id
        wrong = next((s for s in get_suspects(client, inc["id"])
                      if s.get("change_id") and s["change_id"] != sc.truth.culprit_id), None)
        if wrong is not None:
            client.post(f"/incidents/{inc['id']}/label", json={"change_id": wrong["change_id"],
                                                               "verdict": "not_cause"}).raise_for_status()
            out.not_cause[inc["id"]] = wrong["change_id"]
    wait_idle(client, timeout=300)
    return out
