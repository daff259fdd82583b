"""The evidence extension endpoints through the typed client: log patterns around a change,
the incidents of a change, and the model versions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from server.embedded import EmbeddedServer
from tests.tui.tui_seed import ONSET, seed_small, store_of
from workbench.client import NotFound, RcaClient, ValidationFailed


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(data_dir=tmp_path / "data") as s:
        store = store_of(s)
        seed_small(store)
        n_before, n_after = 4, 9
        ts = [ONSET - 140 - 600 + 100 * i for i in range(n_before)] + [ONSET - 120 + 30 * i for i in range(n_after)]
        msgs = ["retrying request 17 after timeout"] * n_before + [
            f"TokenizerError in src/payments/tokenizer.py: card {i} rejected" for i in range(n_after)]
        levels = ["WARN"] * n_before + ["ERROR"] * n_after
        store.insert_logs(table=pa.table({"service": ["payments"] * len(ts), "ts": pa.array(ts, pa.float64()),
                                          "level": levels, "message": msgs,
                                          "attributes": pa.nulls(len(ts), pa.string())}))
        yield s


def test_log_patterns_around_the_top_change(srv: EmbeddedServer) -> None:
    with RcaClient(srv.url) as c:
        lp = c.log_patterns("inc-1")
        assert lp.change_id == "dep-481"  # the top change suspect by default
        assert "payments" in lp.services and lp.lines == 13
        new = lp.new_patterns
        assert len(new) == 1 and new[0].after == 9 and new[0].before == 0 and new[0].level == "ERROR"
        assert "tokenizer.py" in new[0].template
        old = [p for p in lp.patterns if not p.new]
        assert old and old[0].before == 4
        assert c.log_patterns("inc-1", change_id="cfg-77").at.timestamp() == ONSET - 80
        with pytest.raises(NotFound):
            c.log_patterns("inc-1", change_id="dep-nope")
        with pytest.raises(NotFound):
            c.log_patterns("inc-nope")
        with pytest.raises(ValidationFailed):
            c.log_patterns("inc-1", before=-1)


def test_incidents_of_a_change_and_incidents_until(srv: EmbeddedServer) -> None:
    with RcaClient(srv.url) as c:
        rows = c.change_incidents("dep-481")
        assert [(r.incident_id, r.rank, r.suspect_id) for r in rows] == [("inc-1", 1, "sus-inc-1-1")]
        assert c.change_incidents("flag-9")[0].rank == 3
        with pytest.raises(NotFound):
            c.change_incidents("dep-nope")
        incs = c.incidents(until=ONSET - 1)  # started at or before
        assert incs and all(i.started_at.timestamp() <= ONSET - 1 for i in incs) and "inc-1" not in {i.id for i in incs}


def test_model_versions(srv: EmbeddedServer) -> None:
    with RcaClient(srv.url) as c:
        assert c.model_versions() == []
        store_of(srv).save_model(version=1, blob=b"x", info={"labels_used": 5, "labelled_incidents": 4,
                                                            "trained_at": ONSET, "blend_weight": 0.2,
                                                            "heldout": {"ac1": 0.75, "mrr": 0.8}})
        (v,) = c.model_versions()
        assert (v.version, v.labels_used, v.heldout) == (1, 5, {"ac1": 0.75, "mrr": 0.8})
        assert v.trained_at is not None and v.trained_at.timestamp() == ONSET
