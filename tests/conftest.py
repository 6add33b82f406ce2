"""Shared fixtures. Service-specific fixtures live in tests/support/ and the folders' conftests."""
