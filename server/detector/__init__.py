"""server.detector."""
