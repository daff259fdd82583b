"""server.bus."""
