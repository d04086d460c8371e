"""The peer channel: HTTP over mutual TLS 1.3 between nodes (specs/0003-transport.md)."""
