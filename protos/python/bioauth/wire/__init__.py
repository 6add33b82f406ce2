"""What server and SDK both need to speak v1 the same way, beyond the generated stubs."""

from bioauth.wire.limits import (
    MAX_ENCODED_IMAGE_BYTES,
    MAX_FRAMES_PER_SESSION,
    MAX_ID_LENGTH,
    MAX_IMAGE_SIDE_PIXELS,
    MAX_IMAGES_PER_REQUEST,
    MIN_IMAGE_SIDE_PIXELS,
)
from bioauth.wire.metadata import API_KEY_HEADER
from bioauth.wire.transaction import (
    TRANSACTION_ENCODING_VERSION,
    TransactionEncodingError,
    canonical_transaction_bytes,
    transaction_hash,
    transaction_hash_b64,
)

__all__ = [
    "API_KEY_HEADER",
    "MAX_ENCODED_IMAGE_BYTES",
    "MAX_FRAMES_PER_SESSION",
    "MAX_IMAGES_PER_REQUEST",
    "MAX_IMAGE_SIDE_PIXELS",
    "MAX_ID_LENGTH",
    "MIN_IMAGE_SIDE_PIXELS",
    "TRANSACTION_ENCODING_VERSION",
    "TransactionEncodingError",
    "canonical_transaction_bytes",
    "transaction_hash",
    "transaction_hash_b64",
]
