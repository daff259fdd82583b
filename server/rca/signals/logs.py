"""New error-log patterns after the change, and whether they name what changed."""

from __future__ import annotations

import numpy as np

from server.rca import evidence as ev
from server.rca.signals.base import Candidate, ChangeSignal, Evidence, IncidentData


class ErrorLogs(ChangeSignal):
    """New or surging WARN/ERROR templates (Drain) after the change versus before it, on the
    changed service (full weight) and other anomalous services; patterns that start long
    after the change count less."""

    name = "error_logs"
    weight = 2.4
    explain_rank = 2
    inputs = ("new_patterns", "group_masks")

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        c = cand.change
        own_mask, rel_mask, delay = data.log_masks(cand)
        if own_mask.size:
            free = ev.RAMP_S.get(c.kind, 180.0) + 120.0
            wdel = np.exp(-np.maximum(delay - free, 0.0) / 600.0)
            n_own, n_rel = float((wdel * own_mask).sum()), float((wdel * rel_mask).sum())
            group_err = data.group_masks[0]
            any_err = bool((group_err & (own_mask | rel_mask)).any())
        else:
            n_own, n_rel, any_err = 0.0, 0.0, False
        cand.memo["log_counts"] = (n_own, n_rel)
        sig = ev.error_logs(new_own=n_own, new_related=n_rel, error_level=any_err, service=cand.services[0])
        return Evidence(sig.value, sig.sentence, shown_as=self.name)


class LogMentions(ChangeSignal):
    """Those new patterns (or an example line) mention the changed files, the config key,
    the flag or the version."""

    name = "log_mentions"
    weight = 3.25
    explain_rank = 3
    always_explain = True
    inputs = ("new_patterns", "group_masks")

    def compute(self, data: IncidentData, cand: Candidate) -> Evidence:
        if "log_counts" not in cand.memo:
            ErrorLogs().compute(data, cand)
        n_own, n_rel = cand.memo["log_counts"]
        if not (n_own or n_rel):
            return Evidence(0.0)
        own_mask, rel_mask, _ = data.log_masks(cand)
        logs = data.logs
        gids = np.flatnonzero(own_mask | rel_mask)
        texts = [logs.templates[logs.group_template[g]] for g in gids] + [logs.group_example[g] for g in gids]
        specific, files = ev.change_terms_split(cand.change)
        mentioned = ev.find_mentions(specific + files, texts)
        sig = ev.log_mentions(mentioned=mentioned, specific=specific)
        return Evidence(sig.value, sig.sentence, shown_as=self.name if mentioned else None)
