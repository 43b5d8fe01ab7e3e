"""Generated protobuf and gRPC code for postline.v1 (see scripts/gen_protos.py)."""
