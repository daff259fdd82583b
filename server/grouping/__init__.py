"""server.grouping."""
