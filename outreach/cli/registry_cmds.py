"""CLI commands (filled in by its owner)."""
