"""Generated bioauth v1 stubs (scripts/gen_protos.py); do not edit the *_pb2* files by hand."""
