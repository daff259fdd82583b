"""workbench.tui."""
