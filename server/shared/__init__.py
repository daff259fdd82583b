"""State shared by the API processes: per-client rate limits and the query cache.

Both are Protocols (:mod:`server.shared.base`) with an in-process implementation
(:mod:`server.shared.memory`, the embedded default) and a Redis one
(:mod:`server.shared.redis`, one budget and one cache for every process of the stack),
chosen once from settings by :mod:`server.shared.factory`. ``tests/shared`` is the one
conformance suite both pass.
"""
