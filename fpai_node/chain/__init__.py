"""The federation's contracts on an EVM chain: artifacts, deployment, typed calls.

See docs/contracts.md.
"""
