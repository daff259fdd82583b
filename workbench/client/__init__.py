"""workbench.client."""
