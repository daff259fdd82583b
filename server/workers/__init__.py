"""Stage workers: one job each, joined only by events on bus topics (see :mod:`server.events`).

``detector`` (metric batches, partitioned by series) -> ``grouping`` (one writer) ->
``rca`` (debounced, idempotent per incident); ``retrain`` (labels) lives beside ``rca``.
The embedded default runs them as asyncio tasks on the in-process bus
(:mod:`server.pipeline`); the stack runs each as ``rca worker STAGE`` on Kafka.
"""
