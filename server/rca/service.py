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
    RankedService,
    RcaContext,
    RcaResult,
    analyse,
    candidate_window,
    relevant_services,
)
from server.rca.features import FEATURES, CandidateRow
from server.rca.learning import (
    HistoryStats,
    LearntModel,
    ServiceRecord,
    TrainingRecord,
    records_for_incident,
    service_records_for_incident,
    train,
)
from server.rca.roots import ServiceRow
from server.rca.topology import Topology
from server.store.base import Store

__all__ = ["RcaService", "candidate_window"]

log = logging.getLogger(__name__)
ROWS_CACHE = 512
#: Suspects persisted per incident (best first); labelled changes are always candidates
#: and are kept in memory for training even when they rank lower.
MAX_SUSPECTS = 50
#: every active service is a root candidate in fleets up to this size (else the incident's
#: services, their dependencies and callers only)
MAX_ROOT_SERVICES = 200


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
        self._rows: OrderedDict[str, tuple[float, list[CandidateRow], list[ServiceRow]]] = OrderedDict()  # LRU
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
        labelled = {lbl.change_id for lbl in labels if lbl.change_id}
        have = {c.id for c in changes}
        missing = sorted(labelled - have)
        if missing:
            changes = changes + self.store.get_changes(change_ids=missing)
        edges = self.store.get_topology()
        topo = Topology(edges)
        services = relevant_services(incident, anomalies, topo)
        services |= {s for c in changes if since <= c.ts <= onset + CANDIDATE_AFTER_S for s in c.services
                     if any(x in services for x in c.services)}
        data_until = max(min(watermark, onset + 3 * 3600.0), onset)
        # every service can be the root: without a call graph (real recordings often come
        # without one) the neighbourhood is just the incident's services, so the series of
        # all services active around the onset are read (fleets up to MAX_ROOT_SERVICES)
        active = self._active_services(since=onset - SERIES_BEFORE_S, until=data_until)
        if len(active | services) <= MAX_ROOT_SERVICES:
            services |= active
        svc_list = sorted(services)
        series = self.store.get_series_many(services=svc_list, since=onset - SERIES_BEFORE_S, until=data_until)
        # logs up to LOGS_AFTER_S after the bulk of the anomalies (a burst grouped into the
        # incident long before the fault must not cut the fault's logs off)
        starts = sorted(a.started_at for a in anomalies)
        anchor = max(onset, starts[len(starts) // 2] if starts else incident.started_at)
        logs = self.store.get_logs(services=svc_list, since=onset - LOGS_BEFORE_S,
                                   until=min(data_until, anchor + LOGS_AFTER_S), min_level="WARN")
        labelled_series = self._labelled_series(changes, series, since=onset - SERIES_BEFORE_S, until=data_until)
        with self._lock:
            model = self._model
        return RcaContext(
            incident=incident, anomalies=anomalies, changes=_dedupe(changes), edges=edges, series=series, logs=logs,
            watermark=watermark, history=model.history if model is not None else None,
            scorer=model if model is not None and model.weight > 0 else None,
            include_change_ids=frozenset(labelled), history_key=self.key(incident.id), labelled=labelled_series,
        )

    def _active_services(self, *, since: float, until: float) -> set[str]:
        """Services with a series that has points in [since, until] (from the catalogue)."""
        return {i.service for i in self.store.list_series() if i.last_ts >= since and i.first_ts <= until}

    def _labelled_series(self, changes: list[Change], series: dict[tuple[str, str], Any], *, since: float,
                         until: float) -> dict[tuple[str, str], list[tuple[dict[str, str], Any, Any]]]:
        """Per-label-set latency/error series of deployed services (rollout comparison)."""
        from server.rca.deviation import metric_class

        deployed = {s for c in changes if c.kind == "deployment" for s in c.services}
        out: dict[tuple[str, str], list[tuple[dict[str, str], Any, Any]]] = {}
        getter = getattr(self.store, "get_labelled_series", None)
        if getter is None:
            return out
        for svc, metric in sorted(series):
            if svc in deployed and metric_class(metric, svc) in ("latency", "error"):
                sets = getter(service=svc, metric=metric, since=since, until=until)
                if sum(1 for lab, _, _ in sets if lab) >= 2:
                    out[(svc, metric)] = sets
        return out

    def run(self, incident: Incident, *, watermark: float) -> RcaResult:
        """Pure analysis of one incident from stored data (no writes)."""
        result = analyse(self.build_context(incident, watermark=watermark))
        with self._lock:
            self._rows[incident.id] = (watermark, result.rows, result.service_rows)
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
        # one list, best first: change suspects and root-service suspects (see RcaResult.combined)
        ranked = result.combined()[:MAX_SUSPECTS]
        ids = self._new_ids(len(ranked))
        suspects: list[Suspect] = []
        top_item = result.top_item()
        top: Suspect | None = None
        for rank, (s, sid) in enumerate(zip(ranked, ids, strict=True), start=1):
            if isinstance(s, RankedService):
                sus = Suspect(
                    id=sid, incident_id=incident_id, rank=rank, kind="service", change_id=None, service=s.service,
                    ts=s.row.first_ts, score=s.score, evidence=s.evidence, explanation=s.explanation,
                )
            else:
                c = s.change
                sus = Suspect(
                    id=sid, incident_id=incident_id, rank=rank, kind=c.kind,
                    change_id=c.id, service=", ".join(c.services), ts=c.ts, score=s.score, evidence=s.evidence,
                    explanation=s.explanation,
                )
            suspects.append(sus)
            if s is top_item:
                top = sus
        self.store.replace_suspects(incident_id=incident_id, suspects=suspects)
        # re-read just before writing to keep concurrent grouping updates
        current = self.store.get_incident(incident_id=incident_id) or incident
        # the top suspect: the convincing change (it is what to roll back) unless a more
        # convincing root service disagrees with it, else the convincing root service
        current.top_suspect = SuspectRef(id=top.id, kind=top.kind, change_id=top.change_id, score=top.score,
                                         service=top.service) if top else None
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
            service_records: list[ServiceRecord] = []
            with self._lock:
                if self._model is not None:
                    service_records = [r for r in self._model.service_records if r.incident_id not in own_keys
                                       and not r.incident_id.startswith(self.uid + "/")]
            for inc_id in sorted(by_incident):
                got = self._rows_for_training(inc_id)
                if got is None:
                    continue
                rows, srows = got
                lbls = by_incident[inc_id]
                records += records_for_incident(self.key(inc_id), rows,
                                                [(lbl.change_id, lbl.verdict) for lbl in lbls if lbl.change_id])
                service_records += service_records_for_incident(
                    self.key(inc_id), srows, _service_verdicts(lbls, rows))
            if not records and not service_records:
                with self._lock:
                    self._trained_signature = sig
                return False
            version = self._version + 1
            trained_at = max(lbl.created_at for lbl in labels)
            model = train(records, version=version, labels_used=len(labels) + self._imported_labels(records),
                          trained_at=trained_at, service_records=service_records)
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

    def _rows_for_training(self, incident_id: str) -> tuple[list[CandidateRow], list[ServiceRow]] | None:
        with self._lock:
            cached = self._rows.get(incident_id)
        incident = self.store.get_incident(incident_id=incident_id)
        if incident is None:
            return None
        if cached is not None:
            wm, rows, srows = cached
            labelled = {lbl.change_id for lbl in self.store.list_labels(incident_id=incident_id) if lbl.change_id}
            if labelled <= {r.change.id for r in rows}:
                return rows, srows
        else:
            wm = max(incident.resolved_at or 0.0, incident.detected_at + LOGS_AFTER_S)
        result = self.run(incident, watermark=wm)
        return result.rows, result.service_rows

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
            "service_labelled_incidents": model.service_incidents,
            "service_blend_weight": round(model.service_weight, 4),
        }

    def model_info(self) -> dict[str, Any]:
        with self._lock:
            return self._info_of(self._model)

    @property
    def history(self) -> HistoryStats | None:
        with self._lock:
            return self._model.history if self._model is not None else None


def _service_verdicts(labels: list[Label], rows: list[CandidateRow]) -> list[tuple[str, str]]:
    """``(service, verdict)`` for the service rows: service labels, and the services of
    changes labelled the cause (a culprit change names its service as the root)."""
    by_id = {r.change.id: r.change for r in rows}
    out: list[tuple[str, str]] = []
    for lbl in labels:
        if lbl.service:
            out.append((lbl.service, lbl.verdict))
        elif lbl.change_id and lbl.verdict == "cause" and lbl.change_id in by_id:
            out.extend((s, "cause") for s in by_id[lbl.change_id].services)
    return out


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
