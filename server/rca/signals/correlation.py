"""Metric correlation of the changed service's series with the incident's anomalous series."""

from __future__ import annotations

import numpy as np

from server.rca import evidence as ev
from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData


class MetricCorrelation(ChangeSignal):
    """Best absolute correlation (30-s grid) of any metric of the changed service with the
    incident's reference shape (its anomalous series, signed by direction)."""

    name = "metric_correlation"
    weight = 0.7
    explain_rank = 8
    inputs = ("view", "reference")

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        ref = data.reference
        best_corr, corr_metric = 0.0, None
        if ref is not None:
            for s in cand.services:
                for m, _, _ in data.view.by_service.get(s, []):
                    z = data.view.normalised(s, m)
                    if z is None:
                        continue
                    r = abs(float(np.dot(z, ref)) / len(ref))
                    if r > best_corr or corr_metric is None:
                        best_corr, corr_metric = r, m
        sig = ev.metric_correlation(corr=best_corr, metric=corr_metric, service=cand.services[0])
        return Evidence(sig.value, sig.sentence, shown_as=self.name)
