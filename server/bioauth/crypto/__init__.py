"""bioauth.crypto."""
