"""Evidence signals for one candidate change (pure).

Every signal is a small function that returns a :class:`Signal`: a value in ``[0, 1]``
(1 = strong evidence that the change caused the incident) and one human sentence that
says why. The functions take plain numbers, dataclasses and arrays; they never read a
store, the clock, or any label of the incident being analysed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from server.model import Anomaly, Change, DiffFile
from server.rca.topology import Topology


@dataclass(frozen=True, slots=True)
class Signal:
    value: float
    sentence: str


def _clip(x: float) -> float:
    if x != x:  # NaN
        return 0.0
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else float(x)


def fmt_duration(seconds: float) -> str:
    """``135`` -> ``2m15s``; ``7300`` -> ``2h01m``."""
    s = int(round(abs(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m}m{r:02d}s" if r else f"{m}m"
    h, r = divmod(s, 3600)
    return f"{h}h{r // 60:02d}m"


def change_subject(change: Change) -> str:
    """A short noun phrase naming what changed: ``payments deployed v2.14.0``."""
    f = change.fields
    svc = ", ".join(change.services)
    if change.kind == "deployment":
        return f"{svc} deployed {f.get('version') or 'a new version'}"
    if change.kind == "config_change":
        return f"{svc} config {f.get('key') or '?'} changed {f.get('old_value')!s}→{f.get('new_value')!s}"
    state = f.get("new_state")
    pct = f.get("rollout_percent")
    extra = f" at {pct}%" if pct is not None else ""
    return f"flag {f.get('flag') or '?'} set {state if state is not None else 'changed'}{extra} on {svc}"


# ---------------------------------------------------------------------------------
# time
# ---------------------------------------------------------------------------------

#: how long after a change its effect may take to show without any penalty (rolling
#: deploys and partial rollouts ramp up; config reloads are fast).
RAMP_S: dict[str, float] = {"deployment": 300.0, "config_change": 120.0, "flag_change": 180.0}
#: allowed error of the estimated onset (estimated from the data: the time most series
#: departed together, see server.rca.deviation.consensus_onset), so changes this little
#: after the onset are not penalised.
ONSET_SLACK_S = 120.0
#: a change's effect may show this long after its ramp (a cache expiring, pools recycling,
#: a leak filling memory); beyond it, a change with no shift at its own time is stale.
DELAYED_S = 900.0


def time_proximity(*, change_ts: float, onset: float, kind: str, tau_s: float = 1200.0) -> Signal:
    """Closeness of the change to the incident onset.

    Changes shortly before onset score ~1 (a kind-specific ramp is free); older ones decay
    with time constant ``tau_s``; changes after the onset (beyond the estimation slack)
    are penalised hard, since a change cannot cause what already happened.
    """
    lead = onset - change_ts  # > 0: change before onset
    ramp = RAMP_S.get(kind, 180.0)
    if lead >= 0:
        v = 1.0 if lead <= ramp else math.exp(-(lead - ramp) / tau_s)
        return Signal(_clip(v), f"{fmt_duration(lead)} before onset")
    late = -lead
    if late <= ONSET_SLACK_S:
        return Signal(0.8, f"{fmt_duration(late)} after the estimated onset (within its error)")
    return Signal(_clip(0.4 * math.exp(-(late - ONSET_SLACK_S) / 120.0)), f"{fmt_duration(late)} after onset")


def fresh(*, change_ts: float, onset: float, tau_s: float = 120.0) -> float:
    """1 for a change at the onset (or within the onset's error after it), decaying with
    the lead before it (time constant ``tau_s``); 0 for changes clearly after the onset."""
    lead = onset - change_ts
    if lead < -ONSET_SLACK_S:
        return 0.0
    return _clip(math.exp(-max(lead, 0.0) / tau_s))


def long_before(*, change_ts: float, onset: float, kind: str) -> float:
    """0 while the change is within its kind's ramp plus :data:`DELAYED_S` before the onset,
    then rising to 1 over 5 minutes."""
    excess = (onset - change_ts) - RAMP_S.get(kind, 180.0) - DELAYED_S
    return _clip(1.0 - math.exp(-excess / 300.0)) if excess > 0 else 0.0


def after_onset(*, change_ts: float, onset: float) -> float:
    """1 when the change happened clearly after the onset (cannot have started it)."""
    return 1.0 if change_ts - onset > ONSET_SLACK_S else 0.0


# ---------------------------------------------------------------------------------
# change-point alignment
# ---------------------------------------------------------------------------------


def onset_alignment(*, change_ts: float, kind: str, onsets: Sequence[float], tau_s: float = 240.0) -> float:
    """How closely the onsets of anomalies on the changed service follow the change.

    ``onsets`` are anomaly onsets on the changed service(s). An onset in
    ``[change_ts - slack, change_ts + ramp]`` scores 1; later ones decay.
    """
    best = 0.0
    ramp = RAMP_S.get(kind, 180.0)
    for o in onsets:
        d = o - change_ts
        if d < -ONSET_SLACK_S:
            v = math.exp(-(-d - ONSET_SLACK_S) / 120.0) * 0.5
        elif d <= ramp:
            v = 1.0
        else:
            v = math.exp(-(d - ramp) / tau_s)
        best = max(best, v)
    return _clip(best)


def shift_strength(z: float) -> float:
    """Map a robust shift z-score to ``[0, 1]`` (z=3 -> ~0.5, z=8 -> ~0.9)."""
    z = abs(z)
    return _clip(1.0 - math.exp(-max(0.0, z - 1.0) / 3.5))


def change_point_alignment(
    *, onset_match: float, shift: float, metric: str | None, service: str
) -> Signal:
    """Did the changed service's metrics shift at the change time?

    ``onset_match`` comes from :func:`onset_alignment` (anomaly onsets on the service),
    ``shift`` from :func:`shift_strength` (level shift measured in the raw series right at
    the change time).
    """
    v = _clip(max(onset_match, 0.85 * shift, 0.6 * onset_match + 0.6 * shift))
    if v >= 0.5:
        what = f"{metric} on {service}" if metric else f"metrics on {service}"
        return Signal(v, f"{what} shifted at the change")
    if v > 0.0:
        return Signal(v, f"metrics on {service} barely moved at the change")
    return Signal(0.0, f"metrics on {service} did not move at the change")


# ---------------------------------------------------------------------------------
# topology
# ---------------------------------------------------------------------------------


def blast_radius(*, changed: Sequence[str], anomalous: Sequence[str], topo: Topology) -> Signal:
    """Do the anomalous services look like the changed service plus its callers?

    Coverage = share of anomalous services that are a changed service or one of its
    transitive callers (a change cannot make its own callees anomalous). A changed
    service that is itself anomalous weighs most; a change on a service with no anomaly
    but whose callers are anomalous keeps partial credit (its effect may show only
    upstream).
    """
    anom = set(anomalous)
    if not anom:
        return Signal(0.0, "no anomalous services")
    reach: set[str] = set()
    for s in changed:
        reach.add(s)
        reach |= topo.upstream(s)
    covered = anom & reach
    coverage = len(covered) / len(anom)
    own = any(s in anom for s in changed)
    if own:
        v = 0.35 + 0.65 * coverage
    elif covered:
        v = 0.55 * coverage
    else:
        v = 0.0
    svc = ", ".join(changed)
    if own and coverage >= 0.999:
        s = f"all {len(anom)} anomalous services are {svc} or its callers"
    elif own:
        s = f"{svc} is anomalous but {len(anom) - len(covered)} of {len(anom)} anomalous services are not its callers"
    elif covered:
        s = f"{svc} has no anomaly but {len(covered)} of {len(anom)} anomalous services call it"
    else:
        s = f"no anomalous service is {svc} or depends on it"
    return Signal(_clip(v), s)


def anomaly_magnitude(a: Anomaly) -> float:
    """Size of an anomaly's shift in ``[0, 1]`` (x1.05 -> ~0.13, x1.5 -> ~0.69, x3 -> ~0.96):
    tiny shifts that a sensitive detector still flags make weak incidents."""
    base, obs = abs(a.baseline), abs(a.observed)
    if base <= 1e-9:
        return 1.0 if obs > 1e-9 else 0.0
    ratio = max(obs, 1e-9) / base
    return _clip(1.0 - math.exp(-abs(math.log(ratio)) / 0.35))


# ---------------------------------------------------------------------------------
# metric correlation
# ---------------------------------------------------------------------------------


def metric_correlation(*, corr: float, metric: str | None, service: str) -> Signal:
    """Correlation of the changed service's metrics with the incident's anomalous metrics."""
    v = _clip(abs(corr))
    if metric is None:
        return Signal(0.0, f"no metrics for {service}")
    return Signal(v, f"{metric} on {service} correlates {v:.2f} with the incident's anomalies")


# ---------------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------------


def error_logs(*, new_own: float, new_related: float, error_level: bool, service: str) -> Signal:
    """New (or surging) warning/error log patterns after the change.

    ``new_own``: new templates on the changed service; ``new_related``: on other
    anomalous services. ``error_level``: at least one of them is ERROR/FATAL.
    """
    raw = 1.0 - math.exp(-(new_own * 0.9 + new_related * 0.35))
    v = raw * (1.0 if error_level else 0.7)
    own, rel = int(round(new_own)), int(round(new_related))
    if own == 0 and rel == 0:
        if v > 0.0:
            return Signal(_clip(v), "new log patterns appeared well after the change")
        return Signal(0.0, "no new log patterns after the change")
    parts = []
    if own:
        parts.append(f"{own} new {'ERROR' if error_level else 'WARN'} pattern{'s' if own != 1 else ''} on {service}")
    if rel:
        parts.append(f"{rel} on other affected services")
    return Signal(_clip(v), " and ".join(parts) + " after the change")


_TOKEN_SPLIT = re.compile(r"[^A-Za-z0-9_.\-]+")


def change_terms(change: Change) -> list[str]:
    """Distinctive strings a log line may mention: changed files (and their stems), the
    config key (and its last segment), the flag name, the new version."""
    specific, files = change_terms_split(change)
    return specific + files


def change_terms_split(change: Change) -> tuple[list[str], list[str]]:
    """``(specific, files)``: terms that name this very change (version, config key, flag)
    and file names (shared by every change that touches the same file)."""
    f = change.fields
    specific: list[str] = []
    files: list[str] = []
    if change.kind == "deployment":
        for df in change.diff_files:
            base = df.path.rsplit("/", 1)[-1]
            if base:
                files.append(base)
                stem = base.rsplit(".", 1)[0]
                if len(stem) >= 5 and stem != base:
                    files.append(stem)
        v = f.get("version")
        if v:
            specific.append(str(v))
    elif change.kind == "config_change":
        key = f.get("key")
        if key:
            specific.append(str(key))
            last = str(key).rsplit(".", 1)[-1]
            if len(last) >= 5:
                specific.append(last)
    else:
        flag = f.get("flag")
        if flag:
            specific.append(str(flag))
    seen: set[str] = set()

    def clean(terms: list[str]) -> list[str]:
        out: list[str] = []
        for t in terms:
            tl = t.lower()
            if len(tl) >= 3 and tl not in seen:
                seen.add(tl)
                out.append(tl)
        return out

    return clean(specific), clean(files)


def find_mentions(terms: Sequence[str], templates: Iterable[str]) -> list[str]:
    """Terms that occur as whole words (case-insensitive) in any of the texts: ``v1.2.1``
    does not match ``v1.2.10``, ``pool`` does not match ``spool``."""
    text = "\n".join(t.lower() for t in templates)
    out = []
    for term in terms:
        if term in text and re.search(r"(?<![a-z0-9_])" + re.escape(term) + r"(?![a-z0-9_]|\.\d)", text):
            out.append(term)
    return out


def log_mentions(*, mentioned: Sequence[str], specific: Sequence[str] = ()) -> Signal:
    """New patterns that name this very change (its version, config key or flag) are strong
    evidence; mentions of changed file names are weaker (other changes touch them too)."""
    if not mentioned:
        return Signal(0.0, "new log patterns do not mention what changed")
    spec = [m for m in mentioned if m in set(specific)]
    if spec:
        v = 1.0
    else:
        v = min(0.5 + 0.1 * (len(mentioned) - 1), 0.7)
    return Signal(_clip(v), "new errors mention " + ", ".join(mentioned[:3]))


# ---------------------------------------------------------------------------------
# the change itself
# ---------------------------------------------------------------------------------

_RISKY = re.compile(
    r"(migration|migrations/|alembic|schema|\.sql$|requirements.*\.txt$|pyproject\.toml$|setup\.(py|cfg)$|poetry\.lock$"
    r"|package(-lock)?\.json$|yarn\.lock$|go\.(mod|sum)$|cargo\.(toml|lock)$|pom\.xml$|gemfile|dockerfile"
    r"|\.ya?ml$|\.toml$|\.ini$|\.env$|config|settings|/conf/|helm|k8s|terraform|\.tf$)",
    re.IGNORECASE,
)


def is_risky_path(path: str) -> bool:
    return bool(_RISKY.search(path))


def code_diff(files: Sequence[DiffFile]) -> Signal:
    """Size and risk of a deployment's diff (lines changed, risky paths such as
    migrations, dependency manifests and configuration files)."""
    if not files:
        return Signal(0.3, "no diff attached")
    lines = sum(f.added + f.removed for f in files)
    risky = [f.path for f in files if is_risky_path(f.path)]
    size = 1.0 - math.exp(-lines / 400.0)
    v = 0.15 + 0.5 * size + (0.35 if risky else 0.0)
    s = f"{lines} lines in {len(files)} file{'s' if len(files) != 1 else ''}"
    if risky:
        s += f", touches {risky[0].rsplit('/', 1)[-1]}" + (f" and {len(risky) - 1} more risky files" if len(risky) > 1 else "")
    return Signal(_clip(v), s)


def _num(x: object) -> float | None:
    try:
        return float(str(x).strip().rstrip("%").rstrip("ms").rstrip("s"))
    except (TypeError, ValueError):
        return None


def config_magnitude(*, old: object, new: object) -> Signal:
    """How drastic a config value change is (numeric ratio, or a boolean/enum flip)."""
    a, b = _num(old), _num(new)
    if a is not None and b is not None:
        if a == b:
            return Signal(0.1, "value unchanged")
        lo, hi = sorted((abs(a), abs(b)))
        ratio = hi / lo if lo > 0 else 100.0
        v = _clip(0.25 + 0.75 * (1.0 - math.exp(-math.log(max(ratio, 1.0)) / 1.2)))
        return Signal(v, f"value changed {ratio:.1f}x")
    if old is None or str(old) == "":
        return Signal(0.5, "new setting")
    return Signal(0.6, "value replaced")


def rollout_share(change: Change) -> Signal:
    """Share of traffic the change reaches (a flag at 5% rarely explains a big shift)."""
    if change.kind != "flag_change":
        return Signal(1.0, "applies to all traffic")
    f = change.fields
    pct = _num(f.get("rollout_percent"))
    state = str(f.get("new_state") or "").lower()
    if state in {"off", "false", "disabled", "0"}:
        return Signal(0.6, "flag turned off")
    share = 1.0 if pct is None else _clip(pct / 100.0)
    return Signal(_clip(0.2 + 0.8 * math.sqrt(share)), f"rolled out to {share * 100:.0f}% of traffic")


# ---------------------------------------------------------------------------------
# rollback / revert
# ---------------------------------------------------------------------------------

_REVERT_WORDS = re.compile(r"\b(revert|reverts|reverted|rollback|roll back|rolled back|roll-back)\b", re.IGNORECASE)


def is_rollback(change: Change, earlier: Sequence[Change]) -> bool:
    """True when ``change`` undoes one of the ``earlier`` changes (or says so)."""
    if change.description and _REVERT_WORDS.search(change.description):
        return True
    return any(reverts(change, e) for e in earlier)


def reverts(later: Change, earlier: Change) -> bool:
    """Does ``later`` undo ``earlier``?"""
    if later.ts <= earlier.ts or later.kind != earlier.kind or later.id == earlier.id:
        return False
    lf, ef = later.fields, earlier.fields
    if later.kind == "deployment":
        if later.service != earlier.service:
            return False
        prev = ef.get("previous_version")
        if prev is not None and str(lf.get("version")) == str(prev):
            # a consistent chain: the rollback starts from the version it reverts
            lprev = lf.get("previous_version")
            return lprev is None or str(lprev) == str(ef.get("version"))
        desc = later.description or ""
        return bool(_REVERT_WORDS.search(desc)) and (
            str(ef.get("version") or "\0") in desc or str(ef.get("commit") or "\0") in desc or prev is None
        )
    if later.kind == "config_change":
        return (
            later.service == earlier.service
            and lf.get("key") == ef.get("key")
            and str(lf.get("new_value")) == str(ef.get("old_value"))
        )
    if lf.get("flag") != ef.get("flag"):
        return False
    if str(lf.get("new_state")) == str(ef.get("old_state")) and str(lf.get("new_state")) != str(ef.get("new_state")):
        return True
    lp, ep = _num(lf.get("rollout_percent")), _num(ef.get("rollout_percent"))
    return lp is not None and ep is not None and lp < ep and lp == 0


def rollback_recovery(
    *, revert_ts: float | None, recovered_at: float | None, service: str, window_s: float = 900.0
) -> Signal:
    """A change whose revert ends the incident is almost certainly the cause.

    ``recovered_at``: when the affected metrics returned to baseline (None = not seen).
    """
    if revert_ts is None:
        return Signal(0.0, "not rolled back")
    if recovered_at is None:
        return Signal(0.15, f"rolled back on {service} but the incident did not recover")
    d = recovered_at - revert_ts
    if d < -60.0:
        return Signal(0.05, "the incident recovered before the rollback")
    v = 1.0 if d <= 300.0 else math.exp(-(d - 300.0) / window_s)
    return Signal(_clip(v), f"the incident recovered {fmt_duration(max(d, 0.0))} after it was rolled back")


def recovery_time(anomalies: Sequence[Anomaly], *, after: float) -> float | None:
    """When all the given anomalies had ended, if every one ended after ``after - 60 s``."""
    if not anomalies:
        return None
    ends = [a.ended_at for a in anomalies]
    if any(e is None for e in ends):
        return None
    last = max(float(e) for e in ends if e is not None)
    return last if last >= after - 60.0 else None

# History (cause rates learnt from labels of other incidents) lives in
# server.rca.learning.HistoryStats, which needs the training records.
