"""bioauth.service."""
