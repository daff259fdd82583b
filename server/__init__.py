"""RCA workbench server: ingest, detect, group, rank suspects."""

__version__ = "0.1.0"
