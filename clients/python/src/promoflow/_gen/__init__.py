"""Generated protobuf and gRPC modules (see clients/python/generate)."""
