"""Run one pipeline stage as its own process (stack mode).

    rca worker detector   metric batches -> anomaly events (start several: the metrics
                          topic's partitions are spread over them)
    rca worker grouping   anomaly events and topology -> incidents (one writer: extra
                          grouping workers stand by)
    rca worker rca        incidents -> ranked suspects, and retraining after labels

The bus and the store come from RCA_ settings (RCA_BUS__BACKEND=kafka,
RCA_BUS__BOOTSTRAP_SERVERS, RCA_STORE__BACKEND=postgres, RCA_STORE__POSTGRES_DSN...;
`stack/local.sh env` prints them), shared with `rca serve --role api`. SIGTERM or Ctrl-C
stops the worker after its current batch, with its state checkpointed.

With --metrics-port (or RCA_METRICS_PORT) the worker serves its Prometheus metrics at
http://HOST:PORT/metrics: batch latency, messages and errors of its stage, the lag of its
consumer group per partition, store errors (see stack/prometheus/).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

STAGES = ("detector", "grouping", "rca")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", choices=STAGES, help="the stage this process runs")
    p.add_argument("--member-id", default=None,
                   help="name of this worker in its consumer group (default: generated)")
    p.add_argument("--data-dir", default=None, help="directory for local files (env RCA_DATA_DIR)")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics on this port (env RCA_METRICS_PORT; default: not served)")
    p.add_argument("--metrics-host", default="0.0.0.0",
                   help="interface of the metrics port (default 0.0.0.0, for a Prometheus on another host)")


async def _main(args: argparse.Namespace) -> int:
    from server import obs
    from server.app import build_bus, build_store
    from server.pipeline import StageRunner, build_workers
    from server.settings import Settings
    from server.status import StoreStatusBoard
    from server.topics import Topics

    overrides = {k: v for k, v in {"data_dir": args.data_dir, "log_level": args.log_level,
                                   "metrics_port": args.metrics_port}.items() if v is not None}
    settings = Settings(**overrides)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.bus.backend == "memory":
        print("rca worker: the in-process bus cannot be shared between processes; set RCA_BUS__BACKEND=kafka "
              "(`stack/local.sh env` prints the settings), or run `rca serve` for everything in one process")
        return 2
    metrics = obs.Metrics(role=args.stage)
    store = build_store(settings, metrics=metrics)
    bus = build_bus(settings)
    sampler: asyncio.Task[None] | None = None
    try:
        topics = Topics.of(settings)
        await bus.start(topics.specs())
        workers, _ = build_workers([args.stage], store=store, bus=bus, settings=settings,
                                   status=StoreStatusBoard(store), member_id=args.member_id, metrics=metrics)
        if settings.metrics_port is not None:
            try:
                obs.serve(metrics, settings.metrics_port, args.metrics_host)
            except OSError as exc:  # the port is taken
                print(f"rca worker {args.stage}: cannot serve metrics on {args.metrics_host}:"
                      f"{settings.metrics_port}: {exc.strerror or exc}")
                return 1
            sampler = asyncio.create_task(obs.sample_forever(metrics, bus, topics, [w.stage for w in workers]))
        runner = StageRunner(workers)
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for w in workers:
                w.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        print(f"rca worker {args.stage}: bus {settings.bus.backend} {settings.bus.bootstrap_servers}, "
              f"store {settings.store.backend}"
              + (f", metrics on :{settings.metrics_port}/metrics" if settings.metrics_port is not None else ""),
              flush=True)
        runner.start()
        await runner.wait()
    finally:
        if sampler is not None:
            sampler.cancel()
        await bus.close()
        store.close()
    return 0


def run(args: argparse.Namespace) -> int:
    from server.bus.base import BusError
    from server.store.base import StoreError

    try:
        return asyncio.run(_main(args))
    except (BusError, StoreError, ValueError) as exc:
        print(f"rca worker {args.stage}: {exc}")
        return 1
