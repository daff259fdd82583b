"""server.eval."""
