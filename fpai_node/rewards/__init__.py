"""Rewards for contributed compute (specs/0010-rewards.md): pairs of receipts and
acknowledgements summed per epoch into digests in the registry, the reward function, spot
checks and fraud reports, and the service that runs them on a node."""
