"""server.sim."""
