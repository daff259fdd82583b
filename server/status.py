"""What stage workers keep outside themselves: checkpoints and status reports.

``Checkpoints`` keeps, per (stage, partition), an opaque state blob together with the
bus offset it covers, in the state store. ``StatusBoard`` is where workers report their
health (errors, watermark, late points) for ``GET /health``: in process memory for the
embedded default, in the state store when the API runs in another process.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from server.store.base import Store


@dataclass(frozen=True, slots=True)
class Checkpoint:
    offset: int
    blob: bytes


class Checkpoints:
    """Per-partition stage state in the state store (one record per stage and partition)."""

    def __init__(self, store: Store, stage: str) -> None:
        self.store = store
        self.stage = stage

    def _key(self, partition: int) -> str:
        return f"checkpoint:{self.stage}:{partition}"

    def save(self, partition: int, *, offset: int, blob: bytes) -> None:
        value = orjson.dumps({"offset": offset, "blob": base64.b64encode(blob).decode()}).decode()
        self.store.set_meta(key=self._key(partition), value=value)

    def load(self, partition: int) -> Checkpoint | None:
        raw = self.store.get_meta(key=self._key(partition))
        if not raw:
            return None
        d = orjson.loads(raw)
        return Checkpoint(offset=int(d["offset"]), blob=base64.b64decode(d["blob"]))


class StatusBoard(Protocol):
    def report(self, stage: str, member: str, status: dict[str, Any]) -> None: ...

    def read(self) -> dict[str, dict[str, dict[str, Any]]]:
        """stage -> member -> last reported status (with ``at``, wall-clock seconds)."""


class MemoryStatusBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, dict[str, Any]]] = {}

    def report(self, stage: str, member: str, status: dict[str, Any]) -> None:
        with self._lock:
            self._data.setdefault(stage, {})[member] = {**status, "at": time.time()}

    def read(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self._lock:
            return {s: {m: dict(v) for m, v in ms.items()} for s, ms in self._data.items()}


class StoreStatusBoard:
    """Status reports shared through the state store (workers in other processes)."""

    STAGES = ("detector", "grouping", "rca", "retrain")

    def __init__(self, store: Store, *, stale_after: float = 5.0) -> None:
        self.store = store
        self.stale_after = stale_after

    def report(self, stage: str, member: str, status: dict[str, Any]) -> None:
        raw = self.store.get_meta(key=f"status:{stage}")
        data = orjson.loads(raw) if raw else {}
        now = time.time()
        data = {m: v for m, v in data.items() if now - float(v.get("at", 0)) < self.stale_after}
        data[member] = {**status, "at": now}
        self.store.set_meta(key=f"status:{stage}", value=orjson.dumps(data).decode())

    def read(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        now = time.time()
        for stage in self.STAGES:
            raw = self.store.get_meta(key=f"status:{stage}")
            if raw:
                live = {m: v for m, v in orjson.loads(raw).items() if now - float(v.get("at", 0)) < self.stale_after}
                if live:
                    out[stage] = live
        return out
