"""server.rca."""
