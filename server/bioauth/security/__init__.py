"""bioauth.security."""
