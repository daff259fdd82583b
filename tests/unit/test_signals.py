"""The signal registry: one object per evidence signal drives the table, prior and explanation."""

from __future__ import annotations

from server.rca.features import FEATURES
from server.rca.ranking import PRIOR_WEIGHTS
from server.rca.signals import CHANGE_SIGNALS, ChangeSignal


def test_feature_table_is_the_registry_in_order() -> None:
    # stored models name their features: the order is part of their format
    assert FEATURES[:12] == (
        "time_proximity", "after_onset", "change_point_alignment", "blast_radius", "metric_correlation",
        "error_logs", "log_mentions", "change_risk", "rollout", "rollback_recovery", "is_rollback",
        "anomaly_magnitude",
    )
    assert len(set(FEATURES)) == len(FEATURES) == len(CHANGE_SIGNALS)


def test_prior_weights_come_from_the_signals() -> None:
    assert PRIOR_WEIGHTS["blast_radius"] == 6.65
    assert PRIOR_WEIGHTS["after_onset"] < 0 and PRIOR_WEIGHTS["is_rollback"] < 0
    for sig in CHANGE_SIGNALS:
        assert isinstance(sig, ChangeSignal)
        assert PRIOR_WEIGHTS.get(sig.name, 0.0) == sig.weight
