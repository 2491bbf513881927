"""What the loop calls: the upstream gRPC methods (``upstream``) and the built-in memory tools."""
