"""bioauth Python SDK (placeholder; filled in by the foundation work)."""
