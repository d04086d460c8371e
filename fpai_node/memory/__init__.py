"""Federated memory (issue 15): embeddings now; the store, placement and replication next."""
