"""One writer process of tests/store/test_postgres.py (run as a script, not collected).

    python pg_writer.py DSN NAME SEED ROUNDS SHARED_PAIRS_JSON OUT_JSON

Each round: creates two incidents with an anomaly each (ids from the store's sequences),
labels both, then merges the second incident into the first in one unit of work (as the
grouping worker does; it dawdles inside the transaction so that the other writer's labels
race with it). Every shared pair is merged too (the other writer merges the same pairs: a
redelivery seen by two workers). Meanwhile a second thread keeps labelling the other
writer's newest incidents, which are the ones being merged. Writes what it did to OUT_JSON.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time

from server.model import Anomaly, Incident, Label
from server.store.postgres import PostgresStore


def merge(store: PostgresStore, other: str, target: str) -> None:
    with store.unit_of_work() as tx:
        moved = tx.list_anomalies(incident_id=other)
        for m in moved:
            m.incident_id = target
        tx.save_anomalies(anomalies=moved)
        tx.reassign_labels(incident_id=other, to=target)
        time.sleep(0.01)  # a slow worker: labels written now must still not be lost
        tx.delete_incident(incident_id=other)
        tx.record_merge(merged=other, into=target)


def main() -> None:
    dsn, name, seed, rounds, shared_json, out = sys.argv[1:7]
    rng = random.Random(int(seed))
    shared: list[list[str]] = json.loads(shared_json)
    store = PostgresStore(dsn, max_size=4)
    created: list[str] = []
    merged: list[tuple[str, str]] = []
    labels: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def label(inc_id: str) -> None:
        lb = Label(id=store.next_id(prefix="lbl"), incident_id=inc_id, change_id=f"dep-{rng.randint(1, 9)}",
                   verdict=rng.choice(["cause", "not_cause"]), created_at=time.time(), author=name)
        store.add_label(label=lb)
        with lock:
            labels.append(lb.id)

    def label_the_others() -> None:
        while not done.is_set():
            theirs = [i for i in store.list_incidents(limit=8) if not i.title.startswith(name)]
            if theirs:
                label(theirs[0].id)
            time.sleep(0.002)

    labeller = threading.Thread(target=label_the_others)
    labeller.start()

    for i in range(int(rounds)):
        a, b = store.next_ids(prefix="inc", n=2)
        an = store.next_ids(prefix="an", n=2)
        t0 = 1000.0 * i
        store.save_incidents(incidents=[
            Incident(id=x, status="OPEN", title=f"{name} {x}", started_at=t0 + k, detected_at=t0 + k + 1,
                     services=[f"svc-{k}"], severity=0.5, anomaly_count=1) for k, x in enumerate((a, b))])
        store.save_anomalies(anomalies=[
            Anomaly(id=y, service=f"svc-{k}", metric="lat", started_at=t0 + k, detected_at=t0 + k + 1, direction="up",
                    score=3.0, baseline=1.0, observed=2.0, incident_id=x) for k, (x, y) in enumerate(zip((a, b), an, strict=True))])
        created += [a, b]
        label(a)
        label(b)
        merge(store, b, a)
        merged.append((b, a))
        if i < len(shared):
            other, target = shared[i]
            label(other)
            merge(store, other, target)
    done.set()
    labeller.join()
    store.close()
    with open(out, "w") as f:
        json.dump({"created": created, "merged": merged, "labels": labels}, f)


if __name__ == "__main__":
    main()
