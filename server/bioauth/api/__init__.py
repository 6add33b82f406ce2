"""The gRPC edge: the only room that knows protobuf and status codes.

``interceptors/`` run around every call (who calls, deadline, typed error to status); the
servicers translate messages to the service layer's values and back (``convert``,
``authenticate`` for the stream); ``status`` is the one table from ``bioauth.errors`` to codes.
"""
