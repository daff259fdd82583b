"""The RCA service: the thin I/O edge between the store and the pure engine.

The RCA worker calls :meth:`RcaService.analyse_incident` whenever an incident's data
changes, :meth:`RcaService.on_label` after a label is stored, and
:meth:`RcaService.retrain_if_needed` in a background thread; ``GET /model`` returns
:meth:`RcaService.model_info`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from server.model import Change, Incident, Label, Suspect, SuspectRef
from server.rca.engine import (
    CANDIDATE_AFTER_S,
    LOGS_AFTER_S,
    LOGS_BEFORE_S,
    SERIES_BEFORE_S,
    RcaContext,
    RcaResult,
    analyse,
    candidate_window,
    relevant_services,
)
from server.rca.features import FEATURES, CandidateRow
from server.rca.learning import HistoryStats, LearntModel, TrainingRecord, records_for_incident, train
from server.rca.topology import Topology
from server.store.base import Store

__all__ = ["RcaService", "candidate_window"]

log = logging.getLogger(__name__)
ROWS_CACHE = 512
#: Suspects persisted per incident (best first); labelled changes are always candidates
#: and are kept in memory for training even when they rank lower.
MAX_SUSPECTS = 50


class RcaService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.RLock()
        self._train_lock = threading.Lock()
        self._model: LearntModel | None = None
        self._records: list[TrainingRecord] = []
        self._stale = False
        self._trained_signature: tuple[int, str] | None = None
        # latest candidate rows and watermark per analysed incident (training input)
        self._rows: OrderedDict[str, tuple[float, list[CandidateRow]]] = OrderedDict()  # LRU
        # Training records are keyed "<store uid>/<incident id>" so a model (with its
        # records) imported from another store never mixes up incidents with equal ids.
        self.uid = store.store_uid()
        self._version = 0
        self.reload_model()

    def reload_model(self) -> bool:
        """Load the newest stored model when it is newer than the one in memory (another
        process may have trained it). Returns whether a model was loaded."""
        loaded = self.store.load_latest_model()
        if loaded is None:
            return False
        version, blob, info = loaded
        with self._lock:
            if version <= self._version:
                return False
        try:
            parsed = LearntModel.from_blob(version, blob)
        except (ValueError, KeyError, TypeError):
            parsed = None
        with self._lock:
            if parsed is not None:
                self._model, self._records = parsed
                sig = info.get("signature")
                if isinstance(sig, list) and len(sig) == 2:
                    self._trained_signature = (int(sig[0]), str(sig[1]))
            self._version = version
        return parsed is not None

    # ------------------------------------------------------------------ context
    def build_context(self, incident: Incident, *, watermark: float) -> RcaContext:
        """Read everything the engine needs for one incident from the store."""
        anomalies = self.store.list_anomalies(incident_id=incident.id)
        onset = min([incident.started_at, *[a.started_at for a in anomalies]])
        since, until = candidate_window(onset)
        until = min(until, max(watermark, onset + CANDIDATE_AFTER_S))
        changes = self.store.list_changes(since=since, until=until)
        labels = self.store.list_labels(incident_id=incident.id)
        labelled = {lbl.change_id for lbl in labels}
        have = {c.id for c in changes}
        missing = sorted(labelled - have)
        if missing:
            changes = changes + self.store.get_changes(change_ids=missing)
        edges = self.store.get_topology()
        topo = Topology(edges)
        services = relevant_services(incident, anomalies, topo)
        services |= {s for c in changes if since <= c.ts <= onset + CANDIDATE_AFTER_S for s in c.services
                     if any(x in services for x in c.services)}
        svc_list = sorted(services)
        data_until = max(min(watermark, onset + 3 * 3600.0), onset)
        series = self.store.get_series_many(services=svc_list, since=onset - SERIES_BEFORE_S, until=data_until)
        logs = self.store.get_logs(services=svc_list, since=onset - LOGS_BEFORE_S,
                                   until=min(data_until, onset + LOGS_AFTER_S), min_level="WARN")
        with self._lock:
            model = self._model
        return RcaContext(
            incident=incident, anomalies=anomalies, changes=_dedupe(changes), edges=edges, series=series, logs=logs,
            watermark=watermark, history=model.history if model is not None else None,
            scorer=model if model is not None and model.weight > 0 else None,
            include_change_ids=frozenset(labelled), history_key=self.key(incident.id),
        )

    def run(self, incident: Incident, *, watermark: float) -> RcaResult:
        """Pure analysis of one incident from stored data (no writes)."""
        result = analyse(self.build_context(incident, watermark=watermark))
        with self._lock:
            self._rows[incident.id] = (watermark, result.rows)
            self._rows.move_to_end(incident.id)
            while len(self._rows) > ROWS_CACHE:  # evicted incidents are recomputed when labelled
                self._rows.popitem(last=False)
        return result

    # ------------------------------------------------------------------ worker API
    def analyse_incident(self, incident_id: str, *, watermark: float) -> None:
        incident = self.store.get_incident(incident_id=incident_id)
        if incident is None:
            return
        result = self.run(incident, watermark=watermark)
        # persist the best MAX_SUSPECTS (every candidate keeps its row in memory for training)
        ranked = result.suspects[:MAX_SUSPECTS]
        ids = self._new_ids(len(ranked))
        suspects: list[Suspect] = []
        for s, sid in zip(ranked, ids, strict=True):
            c = s.change
            suspects.append(Suspect(
                id=sid, incident_id=incident_id, rank=s.rank, kind=c.kind,
                change_id=c.id, service=", ".join(c.services), ts=c.ts, score=s.score, evidence=s.evidence,
                explanation=s.explanation,
            ))
        self.store.replace_suspects(incident_id=incident_id, suspects=suspects)
        # re-read just before writing to keep concurrent grouping updates
        current = self.store.get_incident(incident_id=incident_id) or incident
        top = suspects[0] if suspects and not result.no_convincing_change else None
        current.top_suspect = SuspectRef(id=top.id, kind=top.kind, change_id=top.change_id, score=top.score) \
            if top else None
        current.no_convincing_change = result.no_convincing_change
        current.rca_version = int(current.rca_version or 0) + 1
        self.store.save_incidents(incidents=[current])

    def _new_ids(self, n: int) -> list[str]:
        if n == 0:
            return []
        many = getattr(self.store, "next_ids", None)  # one round trip when the backend has it
        if callable(many):
            return list(many(prefix="sus", n=n))
        return [self.store.next_id(prefix="sus") for _ in range(n)]

    def on_label(self, label: Label) -> None:
        with self._lock:
            self._stale = True

    def key(self, incident_id: str) -> str:
        """The training-record key of an incident of this store."""
        return f"{self.uid}/{incident_id}"

    def _signature(self, labels: list[Label]) -> tuple[int, str]:
        return len(labels), max((lbl.id for lbl in labels), default="")

    def retrain_if_needed(self) -> bool:
        """Retrain on all labels when they changed since the last model. CPU-bound."""
        with self._train_lock:
            labels = self.store.list_labels()
            sig = self._signature(labels)
            with self._lock:
                if not self._stale and sig == self._trained_signature:
                    return False
                self._stale = False
            if not labels:
                return False
            by_incident: dict[str, list[Label]] = {}
            for lbl in sorted(labels, key=lambda x: (x.created_at, x.id)):
                by_incident.setdefault(lbl.incident_id, []).append(lbl)
            own_keys = {self.key(i) for i in by_incident}
            with self._lock:
                # records imported with a model from elsewhere (other stores) are kept
                records = [r for r in self._records if r.incident_id not in own_keys
                           and not r.incident_id.startswith(self.uid + "/")]
            for inc_id in sorted(by_incident):
                rows = self._rows_for_training(inc_id)
                if rows is None:
                    continue
                records += records_for_incident(self.key(inc_id), rows,
                                                [(lbl.change_id, lbl.verdict) for lbl in by_incident[inc_id]])
            if not records:
                with self._lock:
                    self._trained_signature = sig
                return False
            version = self._version + 1
            trained_at = max(lbl.created_at for lbl in labels)
            model = train(records, version=version, labels_used=len(labels) + self._imported_labels(records),
                          trained_at=trained_at)
            info = self._info_of(model)
            info["signature"] = [sig[0], sig[1]]
            self.store.save_model(version=version, blob=model.to_blob(records), info=info)
            with self._lock:
                self._model, self._records, self._version = model, records, version
                self._trained_signature = sig
            log.info("rca model v%d trained on %d labelled incidents", version, model.labelled_incidents)
            return True

    def _imported_labels(self, records: list[TrainingRecord]) -> int:
        """Labels behind imported records (one cause label per imported incident with a cause,
        plus its not-cause labels are not distinguishable: count incidents)."""
        return len({r.incident_id for r in records if not r.incident_id.startswith(self.uid + "/")})

    def _rows_for_training(self, incident_id: str) -> list[CandidateRow] | None:
        with self._lock:
            cached = self._rows.get(incident_id)
        incident = self.store.get_incident(incident_id=incident_id)
        if incident is None:
            return None
        if cached is not None:
            wm, rows = cached
            labelled = {lbl.change_id for lbl in self.store.list_labels(incident_id=incident_id)}
            if labelled <= {r.change.id for r in rows}:
                return rows
        else:
            wm = max(incident.resolved_at or 0.0, incident.detected_at + LOGS_AFTER_S)
        return self.run(incident, watermark=wm).rows

    # ------------------------------------------------------------------ GET /model
    @staticmethod
    def _info_of(model: LearntModel | None) -> dict[str, Any]:
        if model is None:
            return {"version": 0, "labels_used": 0, "labelled_incidents": 0, "trained_at": None,
                    "blend_weight": 0.0, "heldout": None, "features": list(FEATURES), "kind": "heuristic prior"}
        return {
            "version": model.version, "labels_used": model.labels_used,
            "labelled_incidents": model.labelled_incidents, "trained_at": model.trained_at,
            "blend_weight": round(model.weight, 4), "heldout": model.heldout, "features": list(FEATURES),
            "kind": "prior blended with logistic regression",
            "coefficients": {n: round(float(v), 4) for n, v in zip(FEATURES, model.coef, strict=True)},
        }

    def model_info(self) -> dict[str, Any]:
        with self._lock:
            return self._info_of(self._model)

    @property
    def history(self) -> HistoryStats | None:
        with self._lock:
            return self._model.history if self._model is not None else None


def _dedupe(changes: list[Change]) -> list[Change]:
    seen: set[str] = set()
    out: list[Change] = []
    for c in changes:
        if c.id not in seen:
            seen.add(c.id)
            out.append(c)
    return out


def model_info_of_store(store: Store) -> dict[str, Any]:
    """``GET /model`` from the state store alone (the API holds no RCA worker)."""
    loaded = store.load_latest_model()
    if loaded is None:
        return RcaService._info_of(None)
    info = {k: v for k, v in loaded[2].items() if k != "signature"}
    return info
