"""Change webhooks -> :class:`Change` events (pure): GitHub, Argo CD, LaunchDarkly.

- GitHub ``deployment`` and ``deployment_status`` events (``X-GitHub-Event`` header),
  signed with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``. A
  deployment is one change (id ``gh-deployment-<id>``) whichever of its events comes first:
  the ``deployment`` event at its creation time, or a ``deployment_status`` with state
  ``success`` at the status time; other states are acknowledged and not stored. The
  service is ``deployment.payload.service`` when the workflow sets it, else the
  repository name; the version is ``payload.version``, else the ref, else the short sha.
- Argo CD notifications (the webhook service; the body is the template the user
  configures, see docs/integrations.md): either the documented flat template or the whole
  Application (``{"app": {{toJson .app}}}``). A sync whose phase is ``Succeeded`` is a
  deployment; Argo CD does not sign, so an optional shared token is checked instead
  (``Authorization: Bearer <token>``).
- LaunchDarkly flag webhooks (the audit-log entry), signed with ``X-LD-Signature: <hex
  HMAC-SHA256 of the body>``. Each flag/environment the entry touches is one flag change
  with the environment's on/off state before and after and the rollout share of the
  serving variation. The services come from the flag's tags ``service:<name>`` (or
  ``service-<name>``), else from ``service`` query parameters on the webhook URL.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from server.ingest.errors import BatchError, DecodeError, Unauthorized, err
from server.model import Change
from server.timeutil import parse_event_ts, ts_range_error

_NO_VALUE = ("", "<no value>", "null", "None")


def verify_hmac(body: bytes, secret: str | None, signature: str | None, *, prefix: str = "",
                header: str = "signature") -> None:
    """Raise :class:`Unauthorized` unless ``signature`` is the hex HMAC-SHA256 of the body
    with ``secret`` (after ``prefix``). No configured secret: nothing to check."""
    if not secret:
        return
    if not signature:
        raise Unauthorized(f"missing {header} header (a webhook secret is configured)")
    sig = signature.strip()
    if prefix and not sig.startswith(prefix):
        raise Unauthorized(f"{header} must start with {prefix!r}")
    want = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig[len(prefix):].lower()):
        raise Unauthorized(f"{header} does not match the body (wrong secret or altered body)")


def verify_token(token: str | None, authorization: str | None, header_token: str | None) -> None:
    if not token:
        return
    given = header_token
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if not given:
        raise Unauthorized("missing token: send Authorization: Bearer <token> (a webhook token is configured)")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("wrong webhook token")


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _s(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return None if s in _NO_VALUE else s


def _ts(v: Any, loc: list[Any]) -> float:
    try:
        return parse_event_ts(v)
    except (ValueError, TypeError) as exc:
        raise BatchError([err(loc, f"invalid timestamp: {exc}")]) from exc


def _need(d: Any, key: str, loc: list[Any]) -> Any:
    if not isinstance(d, dict) or d.get(key) in (None, ""):
        raise BatchError([err([*loc, key], "field required", "missing")])
    return d[key]


# ---- GitHub -----------------------------------------------------------------------------


def github(event: str | None, doc: Any) -> tuple[list[Change], str | None]:
    """(changes, why nothing was stored) for one GitHub webhook delivery."""
    if not isinstance(doc, dict):
        raise DecodeError("a GitHub webhook body is a JSON object")
    if event == "ping":
        return [], "ping"
    if event not in ("deployment", "deployment_status"):
        return [], f"event {event!r} is not a deployment event (subscribe to deployment and deployment_status)"
    dep = _need(doc, "deployment", ["body"])
    repo = _obj(doc.get("repository"))
    payload = _obj(dep.get("payload"))
    dep_id = _need(dep, "id", ["body", "deployment"])
    if event == "deployment_status":
        status = _need(doc, "deployment_status", ["body"])
        state = _s(status.get("state"))
        if state != "success":
            return [], f"deployment status {state!r} (only success is a change)"
        ts = _ts(_need(status, "created_at", ["body", "deployment_status"]),
                 ["body", "deployment_status", "created_at"])
    else:
        if doc.get("action") not in (None, "created"):
            return [], f"deployment action {doc.get('action')!r}"
        ts = _ts(_need(dep, "created_at", ["body", "deployment"]), ["body", "deployment", "created_at"])
    service = _s(payload.get("service")) or _s(repo.get("name"))
    if not service:
        raise BatchError([err(["body", "repository", "name"],
                              "no service: set deployment.payload.service or send the repository", "missing")])
    sha = _s(dep.get("sha"))
    version = _s(payload.get("version")) or _s(dep.get("ref")) or (sha[:12] if sha else None) or str(dep_id)
    creator = _obj(dep.get("creator"))
    fields: dict[str, Any] = {"version": version, "source": "github"}
    if sha:
        fields["commit"] = sha
    if _s(payload.get("previous_version")):
        fields["previous_version"] = _s(payload.get("previous_version"))
    if _s(dep.get("environment")):
        fields["environment"] = _s(dep.get("environment"))
    if _s(repo.get("full_name")):
        fields["repository"] = _s(repo.get("full_name"))
    return [Change(id=f"gh-deployment-{dep_id}", kind="deployment", services=[service], ts=ts,
                   author=_s(creator.get("login")), description=_s(dep.get("description")),
                   fields=fields)], None


# ---- Argo CD ----------------------------------------------------------------------------


def argocd(doc: Any) -> tuple[list[Change], str | None]:
    if not isinstance(doc, dict):
        raise DecodeError("an Argo CD notification body is a JSON object")
    app = doc.get("app")
    if isinstance(app, dict):  # {"app": {{toJson .app}}}: the whole Application
        meta = app.get("metadata") or {}
        spec = app.get("spec") or {}
        status = app.get("status") or {}
        op = status.get("operationState") or {}
        labels = meta.get("labels") or {}
        name = _s(meta.get("name"))
        flat: dict[str, Any] = {
            "app": name, "service": _s(doc.get("service")) or _s(labels.get("rca/service"))
            or _s(labels.get("app.kubernetes.io/name")) or name,
            "revision": _s((op.get("syncResult") or {}).get("revision")) or _s((status.get("sync") or {}).get("revision")),
            "phase": _s(op.get("phase")), "started_at": _s(op.get("startedAt")),
            "finished_at": _s(op.get("finishedAt")),
            "author": _s(((op.get("operation") or {}).get("initiatedBy") or {}).get("username")),
            "repo": _s((spec.get("source") or {}).get("repoURL")),
            "images": (status.get("summary") or {}).get("images") or [],
            "namespace": _s((spec.get("destination") or {}).get("namespace")),
        }
        history = status.get("history") or []
        if isinstance(history, list) and len(history) >= 2 and isinstance(history[-2], dict):
            flat["previous_revision"] = _s(history[-2].get("revision"))
        loc = ["body", "app"]
    else:
        flat = {k: (_s(v) if not isinstance(v, list) else v) for k, v in doc.items()}
        loc = ["body"]
    flat = {k: v for k, v in flat.items() if v is not None}
    name = _s(flat.get("app"))
    if not name:
        raise BatchError([err([*loc, "app" if loc == ["body"] else "metadata"], "application name required",
                              "missing")])
    phase = flat.get("phase")
    if phase not in (None, "Succeeded"):
        return [], f"sync phase {phase!r} (only Succeeded is a deployment)"
    revision = _s(flat.get("revision"))
    if not revision:
        raise BatchError([err([*loc, "revision"], "sync revision required", "missing")])
    when = flat.get("finished_at") or flat.get("started_at") or flat.get("ts")
    if not when:
        raise BatchError([err([*loc, "finished_at"], "field required (operationState.finishedAt)", "missing")])
    ts = _ts(when, [*loc, "finished_at"])
    images = [i for i in (flat.get("images") or []) if isinstance(i, str) and i]
    tag = images[0].rsplit(":", 1)[1] if images and ":" in images[0].rsplit("/", 1)[-1] else None
    fields: dict[str, Any] = {"version": flat.get("version") or tag or revision[:12], "commit": revision,
                              "source": "argocd", "application": name}
    for key, out in (("repo", "repository"), ("namespace", "namespace"), ("previous_revision", "previous_version")):
        if flat.get(key):
            fields[out] = flat[key] if key != "previous_revision" else str(flat[key])[:12]
    if images:
        fields["images"] = images
    started = flat.get("started_at") or when
    cid = f"argocd-{name}-{revision[:12]}-{int(_ts(started, [*loc, 'started_at']))}"
    return [Change(id=cid, kind="deployment", services=[str(flat.get("service") or name)], ts=ts,
                   author=_s(flat.get("author")), description=f"Argo CD sync of {name} to {revision[:12]}",
                   fields=fields)], None


# ---- LaunchDarkly -----------------------------------------------------------------------


def _resource_env_flag(resource: str) -> tuple[str | None, str | None]:
    env = flag = None
    for part in resource.split(":"):
        if part.startswith("env/"):
            env = part[4:]
        elif part.startswith("flag/"):
            flag = part[5:]
    return env, flag


def _rollout_percent(env: Mapping[str, Any], variations: Sequence[Any]) -> float | None:
    """Share of traffic (0-100) served a variation other than the off variation by the
    fallthrough rollout; 100/0 for a fixed fallthrough variation."""
    if not env.get("on"):
        return 0.0
    off = env.get("offVariation")
    fall = env.get("fallthrough") or {}
    rollout = fall.get("rollout") if isinstance(fall, dict) else None
    if isinstance(rollout, dict) and isinstance(rollout.get("variations"), list):
        total = sum(float(v.get("weight") or 0) for v in rollout["variations"] if isinstance(v, dict)) or 100000.0
        on = sum(float(v.get("weight") or 0) for v in rollout["variations"]
                 if isinstance(v, dict) and v.get("variation") != off)
        return round(100.0 * on / total, 3)
    if isinstance(fall, dict) and "variation" in fall:
        return 0.0 if fall.get("variation") == off else 100.0
    return None


def launchdarkly(doc: Any, *, services: Sequence[str] = ()) -> tuple[list[Change], str | None]:
    if not isinstance(doc, dict):
        raise DecodeError("a LaunchDarkly webhook body is a JSON object")
    if doc.get("kind") not in (None, "flag"):
        return [], f"audit entry kind {doc.get('kind')!r} is not a flag change"
    accesses = doc.get("accesses") or []
    targets: list[tuple[str, str | None]] = []
    for a in accesses if isinstance(accesses, list) else []:
        env, flag = _resource_env_flag(str((a or {}).get("resource") or ""))
        if flag and (flag, env) not in targets:
            targets.append((flag, env))
    cur = _obj(doc.get("currentVersion"))
    prev = _obj(doc.get("previousVersion"))
    if not targets and cur.get("key"):
        targets = [(str(cur["key"]), None)]
    if not targets:
        return [], "the entry names no flag"
    date = _need(doc, "date", ["body"])
    if not isinstance(date, int | float) or isinstance(date, bool):
        raise BatchError([err(["body", "date"], "date must be epoch milliseconds", "int_type")])
    ts = float(date) / 1000.0
    if (why := ts_range_error(ts)) is not None:
        raise BatchError([err(["body", "date"], f"date (epoch milliseconds): {why}")])
    tags = [str(t) for t in (cur.get("tags") or []) if isinstance(t, str)]
    svcs = [t.split(":", 1)[1] if t.startswith("service:") else t[len("service-"):]
            for t in tags if t.startswith(("service:", "service-")) and len(t) > 8]
    svcs = list(dict.fromkeys([s for s in svcs if s] + [s for s in services if s]))
    if not svcs:
        raise BatchError([err(["body", "currentVersion", "tags"],
                              "no service for this flag: tag the flag service:<name> or add ?service=<name> "
                              "to the webhook URL", "missing")])
    member = _obj(doc.get("member"))
    author = _s(member.get("email")) or " ".join(x for x in (_s(member.get("firstName")),
                                                              _s(member.get("lastName"))) if x) or None
    variations = cur.get("variations") or []
    out: list[Change] = []
    entry_id = _s(doc.get("_id")) or hashlib.sha256(repr(sorted(doc)).encode()).hexdigest()[:16]
    for flag, env in targets:
        fields: dict[str, Any] = {"flag": flag, "services": svcs, "source": "launchdarkly"}
        if env:
            fields["environment"] = env
            cenv = (cur.get("environments") or {}).get(env) or {}
            penv = (prev.get("environments") or {}).get(env) or {}
            if "on" in cenv:
                fields["new_state"] = "on" if cenv.get("on") else "off"
                pct = _rollout_percent(cenv, variations)
                if pct is not None:
                    fields["rollout_percent"] = pct
            if "on" in penv:
                fields["old_state"] = "on" if penv.get("on") else "off"
        out.append(Change(id=f"ld-{entry_id}-{flag}" + (f"-{env}" if env else ""), kind="flag_change",
                          services=svcs, ts=ts, author=author,
                          description=_s(doc.get("title")) or _s(doc.get("description")) or _s(doc.get("comment")),
                          fields=fields))
    return out, None
