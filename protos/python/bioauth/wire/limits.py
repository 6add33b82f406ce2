"""The limits the proto states (enum `bioauth.v1.Limits`), as plain ints for both sides."""

from bioauth.v1 import types_pb2

MAX_IMAGES_PER_REQUEST: int = types_pb2.MAX_IMAGES_PER_REQUEST
MAX_FRAMES_PER_SESSION: int = types_pb2.MAX_FRAMES_PER_SESSION
MAX_ENCODED_IMAGE_BYTES: int = types_pb2.MAX_ENCODED_IMAGE_BYTES
MAX_IMAGE_SIDE_PIXELS: int = types_pb2.MAX_IMAGE_SIDE_PIXELS
MIN_IMAGE_SIDE_PIXELS: int = types_pb2.MIN_IMAGE_SIDE_PIXELS
MAX_ID_LENGTH: int = types_pb2.MAX_ID_LENGTH
