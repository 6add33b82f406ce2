"""bioauth.matching."""
