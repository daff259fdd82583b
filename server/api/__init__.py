"""server.api."""
