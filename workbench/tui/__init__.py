"""workbench.tui: the Textual triage console (``rca tui``); see docs/tui.md."""
