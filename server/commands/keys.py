"""Manage API keys: create (the secret is printed once), list, revoke.

Without --url the command opens the store of the settings directly (--data-dir for the
embedded DuckDB file, which works only while no server holds it; RCA_STORE__* settings
for a shared database). With --url it asks a running server, authenticated by an admin
key (--key or RCA_API_KEY).

Roles: ingest (send telemetry and changes), read (query), label (label and rerun RCA,
implies read), admin (everything, including keys and the audit trail). Once one active
key exists, every request needs a key (the webhook receivers check their own signatures).

  rca keys create --name ci-deployer --role ingest
  rca keys create --name alice --role label --data-dir ./data
  rca keys list --url http://rca:8000 --key $ADMIN_KEY
  rca keys revoke rca_1a2b3c4d
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from server.model import ROLES


def add_arguments(p: argparse.ArgumentParser) -> None:
    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data-dir", type=Path, default=None, help="data dir of the embedded store (env RCA_DATA_DIR)")
        sp.add_argument("--url", default=None, help="manage the keys of a running server through its admin API")
        sp.add_argument("--key", default=None, help="admin API key for --url (default: env RCA_API_KEY)")

    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    c = sub.add_parser("create", help="create a key and print its secret (shown once)")
    c.add_argument("--name", required=True, help="who or what uses the key (shown in the audit trail)")
    c.add_argument("--role", action="append", required=True, choices=ROLES,
                   help="a role of the key (repeatable)")
    common(c)
    ls = sub.add_parser("list", help="list keys (never their secrets)")
    common(ls)
    r = sub.add_parser("revoke", help="revoke a key by its id (rca_xxxxxxxx)")
    r.add_argument("key_id")
    common(r)


def _fail(msg: str) -> int:
    print(f"rca keys: {msg}", file=sys.stderr)
    return 1


def _print_keys(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no API keys: the server runs open on loopback")
        return
    for k in rows:
        state = f"revoked {k['revoked_at']}" if k.get("revoked_at") else "active"
        print(f"{k['id']}  {k['name']:<24} {','.join(k['roles']):<20} created {k['created_at']}  {state}")


def _remote(args: argparse.Namespace) -> int:
    import httpx

    key = args.key or os.environ.get("RCA_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=10) as c:
            if args.keys_command == "create":
                r = c.post("/admin/keys", json={"name": args.name, "roles": args.role})
            elif args.keys_command == "list":
                r = c.get("/admin/keys")
            else:
                r = c.delete(f"/admin/keys/{args.key_id}")
    except httpx.HTTPError as exc:
        return _fail(f"cannot reach {args.url}: {exc}")
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text
        return _fail(f"HTTP {r.status_code}: {detail}")
    body = r.json()
    if args.keys_command == "create":
        print(body["key"])
        print(f"created {body['id']} ({body['name']}, roles {','.join(body['roles'])}); "
              "the secret above is shown only once", file=sys.stderr)
    elif args.keys_command == "list":
        _print_keys(body)
    else:
        print(f"revoked {body['id']}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.url:
        return _remote(args)
    from server import auth
    from server.api.auth import key_public
    from server.app import build_store
    from server.commands.serve import load_settings
    from server.model import AuditEntry
    from server.store.base import StoreError

    settings = load_settings({"data_dir": args.data_dir} if args.data_dir else {})
    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        store = build_store(settings)
    except StoreError as exc:
        hint = " (a running server holds it: use --url and an admin key)" if "lock" in str(exc).lower() else ""
        return _fail(f"cannot open the store in {Path(settings.data_dir).resolve()}{hint}: {str(exc).splitlines()[0]}")
    try:
        now = time.time()
        actor = f"cli ({os.environ.get('USER', 'local')})"
        if args.keys_command == "create":
            secret, key = auth.new_key(name=args.name, roles=args.role, now=now)
            store.save_api_key(key=key)
            store.add_audit(entry=AuditEntry(id=store.next_id(prefix="aud"), ts=now, actor=actor,
                                             action="key_create", target=key.id,
                                             detail={"name": key.name, "roles": key.roles}))
            print(secret)
            print(f"created {key.id} ({key.name}, roles {','.join(key.roles)}); the secret above is shown only once",
                  file=sys.stderr)
        elif args.keys_command == "list":
            _print_keys([key_public(k) for k in store.list_api_keys()])
        else:
            if not store.revoke_api_key(key_id=args.key_id, at=now):
                return _fail(f"no active key {args.key_id!r}")
            store.add_audit(entry=AuditEntry(id=store.next_id(prefix="aud"), ts=now, actor=actor,
                                             action="key_revoke", target=args.key_id))
            print(f"revoked {args.key_id}")
    finally:
        store.close()
    return 0
