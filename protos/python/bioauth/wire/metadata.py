"""The gRPC metadata keys of the v1 API that the proto cannot state."""

API_KEY_HEADER = "x-api-key"
"""The metadata key that carries a gateway's API key on every call."""
