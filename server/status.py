"""What stage workers keep outside themselves: checkpoints and status reports.

``Checkpoints`` keeps, per (stage, partition), an opaque state blob together with the
bus offset it covers, in the state store. ``StatusBoard`` is where workers report their
health (errors, watermark, late points) for ``GET /health``: in process memory for the
embedded default, in the state store when the API runs in another process.
"""

from __future__ import annotations

import threading
import time
import zlib
from typing import Any, Protocol

import orjson

from server.store.base import Checkpoint, Store


class Checkpoints:
    """A stage's per-partition state in the state store, with the offset it covers.

    On a bus that does not outlive the process (``durable`` False: the in-process bus),
    offsets start at 0 again after a restart while the store keeps the last checkpoint;
    saved offsets then continue from the restored checkpoint's offset, so they only grow
    (the store refuses a checkpoint older than the one it has).
    """

    def __init__(self, store: Store, stage: str, *, durable: bool) -> None:
        self.store = store
        self.stage = stage
        self.durable = durable
        self._base: dict[int, int] = {}

    def save(self, partition: int, *, offset: int, blob: bytes) -> bool:
        off = offset if self.durable else self._base.get(partition, 0) + offset
        return self.store.save_checkpoint(stage=self.stage, partition=partition, offset=off, state=blob)

    def load(self, partition: int) -> Checkpoint | None:
        ck = self.store.load_checkpoint(stage=self.stage, partition=partition)
        if not self.durable:
            self._base[partition] = ck.offset if ck is not None else 0
        return ck


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
    """Status reports shared through the state store (workers in other processes): one
    record per worker, kept with the checkpoints of stage ``status.<stage>``."""

    STAGES = ("detector", "grouping", "rca", "retrain")

    def __init__(self, store: Store, *, stale_after: float = 5.0) -> None:
        self.store = store
        self.stale_after = stale_after

    def report(self, stage: str, member: str, status: dict[str, Any]) -> None:
        now = time.time()
        blob = orjson.dumps({"member": member, **status, "at": now})
        self.store.save_checkpoint(stage=f"status.{stage}", partition=zlib.crc32(member.encode()) & 0x7FFFFFFF,
                                   offset=int(now * 1000), state=blob)

    def read(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        now = time.time()
        for stage in self.STAGES:
            live: dict[str, dict[str, Any]] = {}
            for ck in self.store.list_checkpoints(stage=f"status.{stage}"):
                d = orjson.loads(ck.state)
                if now - float(d.get("at", 0)) < self.stale_after:
                    live[str(d.pop("member"))] = d
            if live:
                out[stage] = live
        return out
