"""bioauth.api."""
