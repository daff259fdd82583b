"""Sub-commands of ``rca`` implemented by the server package."""
