"""bioauth.inference."""
