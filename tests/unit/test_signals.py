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
    assert PRIOR_WEIGHTS["blast_radius"] > 5.0  # the strongest evidence
    for penalty in ("after_onset", "is_rollback", "rollout_alike", "long_before_onset"):
        assert PRIOR_WEIGHTS[penalty] < 0
    for sig in CHANGE_SIGNALS:
        assert isinstance(sig, ChangeSignal)
        assert PRIOR_WEIGHTS.get(sig.name, 0.0) == sig.weight


def test_time_signals_tell_just_before_from_long_before() -> None:
    from server.rca import evidence as ev

    onset = 10_000.0
    assert ev.fresh(change_ts=onset - 10, onset=onset) > 0.9
    assert ev.fresh(change_ts=onset - 600, onset=onset) < 0.01
    assert ev.fresh(change_ts=onset + 600, onset=onset) == 0.0  # clearly after: cannot have started it
    # a delayed effect is forgiven up to the kind's ramp plus 15 minutes, not beyond
    assert ev.long_before(change_ts=onset - 900, onset=onset, kind="deployment") == 0.0
    assert ev.long_before(change_ts=onset - 1800, onset=onset, kind="deployment") > 0.8


def test_service_registry_has_the_cascade_signal() -> None:
    from server.rca.roots import SERVICE_FEATURES, SERVICE_PRIOR_WEIGHTS

    assert "cascade_origin" in SERVICE_FEATURES and SERVICE_PRIOR_WEIGHTS["cascade_origin"] > 0
    assert len(set(SERVICE_FEATURES)) == len(SERVICE_FEATURES)
