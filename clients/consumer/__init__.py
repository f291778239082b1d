"""An example downstream consumer of `presence.changes` (docs/consumers.md)."""
