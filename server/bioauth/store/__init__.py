"""bioauth.store."""
