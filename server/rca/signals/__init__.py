"""The registry of evidence signals.

Each signal is one object (its inputs, its value in ``[0, 1]``, its prior weight, its
sentence), defined in one module of this package. The order of :data:`CHANGE_SIGNALS` is
the column order of the feature table (models store it; changing it retrains them).
"""

from __future__ import annotations

from server.rca.signals.agreement import RootService
from server.rca.signals.alignment import ChangePointAlignment
from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData
from server.rca.signals.blast import BlastRadius
from server.rca.signals.correlation import MetricCorrelation
from server.rca.signals.history import History, HistoryPart
from server.rca.signals.kind import KindIs
from server.rca.signals.logs import ErrorLogs, LogMentions
from server.rca.signals.magnitude import AnomalyMagnitude
from server.rca.signals.risk import ChangeRisk, Rollout
from server.rca.signals.rollback import IsRollback, RollbackRecovery
from server.rca.signals.rollout import RolloutAlike, RolloutCompare
from server.rca.signals.service_base import ServiceSignal
from server.rca.signals.service_cascade import CascadeOrigin
from server.rca.signals.service_change import ChangeSupport, InIncident
from server.rca.signals.service_deviation import Deviation
from server.rca.signals.service_first import FirstChange
from server.rca.signals.service_logs import LogBlame, OwnErrors
from server.rca.signals.service_persistence import Persistence
from server.rca.signals.service_resource import Resource
from server.rca.signals.service_topology import TopologyRoot
from server.rca.signals.time import AfterOnset, Fresh, LongBefore, TimeProximity

#: Signals computed from the incident's data, in feature-table order.
BASE_SIGNALS: tuple[ChangeSignal, ...] = (
    TimeProximity(), AfterOnset(), ChangePointAlignment(), BlastRadius(), MetricCorrelation(), ErrorLogs(),
    LogMentions(), ChangeRisk(), Rollout(), RollbackRecovery(), IsRollback(), AnomalyMagnitude(),
    RolloutCompare(), RolloutAlike(), RootService(), LongBefore(), Fresh(),
)
#: Signals learnt from labels of other incidents (see learning.HistoryStats).
HISTORY_SIGNALS: tuple[ChangeSignal, ...] = (
    History(), HistoryPart("hist_service_kind"), HistoryPart("hist_author"), HistoryPart("hist_path"),
)
KIND_SIGNALS: tuple[ChangeSignal, ...] = (KindIs("deployment"), KindIs("config_change"), KindIs("flag_change"))
CHANGE_SIGNALS: tuple[ChangeSignal, ...] = BASE_SIGNALS + HISTORY_SIGNALS + KIND_SIGNALS
#: Root-service signals, in the column order of the service table.
SERVICE_SIGNALS: tuple[ServiceSignal, ...] = (
    Deviation(), FirstChange(), TopologyRoot(), Resource(), LogBlame(), OwnErrors(), ChangeSupport(), InIncident(),
    Persistence(), CascadeOrigin(),
)

__all__ = ["BASE_SIGNALS", "CHANGE_SIGNALS", "HISTORY_SIGNALS", "KIND_SIGNALS", "SERVICE_SIGNALS", "Candidate",
           "ChangeSignal", "Evidence", "IncidentData", "ServiceSignal"]
