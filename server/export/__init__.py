"""Export of incident history to Parquet (a directory or a streamed zip), loaders'
manifest format, and backtesting a settings change on an exported period.

``server.export.tables`` reads the store table by table in record batches;
``server.export.archive`` writes them as Parquet files plus ``manifest.json`` into a
directory or an incrementally written zip; ``server.export.compare`` (pure) diffs the
incidents and rankings of two runs; ``server.export.backtest`` replays an export into a
fresh embedded server with changed settings.
"""
