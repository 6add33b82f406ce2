"""bioauth.observability."""
