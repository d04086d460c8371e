"""The numbers a deployment fixes (CHAIN-9's `parameters`). Kept free of web3 and eth-* imports:
the command line reads these defaults on every start, and importing web3 costs about a second."""

from dataclasses import dataclass

from fpai_node.chain.artifacts import ChainError


@dataclass(frozen=True)
class GovernanceParameters:
    """The numbers a deployment fixes; governance can change all of them afterwards."""

    # Time between a proposal and the start of its vote: ballots have time to travel, and the
    # voter list is the one at that moment. Short, as a proposal is already public on chain.
    voting_delay_s: int = 300
    # Three days: operators in every time zone, one of them away for a weekend, still vote.
    voting_period_s: int = 3 * 24 * 3600
    # One day between a passed proposal and its execution: time to see it and react.
    timelock_delay_s: int = 24 * 3600
    # A majority of the operators (rounded up) must vote for or abstain.
    quorum_percent: int = 51
    # The Sacred Loop: 60% of revenue to the treasury, 40% to growth.
    treasury_bps: int = 6000
    # Ninety days to claim an epoch's rewards before they return to the treasury.
    claim_window_s: int = 90 * 24 * 3600

    def check(self) -> None:
        """Raises ChainError naming the first value a contract would refuse or that is unsafe."""
        for label, value, low, high, unit in (
            ("voting delay", self.voting_delay_s, 0, 2**48 - 1, "seconds"),  # uint48
            ("voting period", self.voting_period_s, 1, 2**32 - 1, "seconds"),  # uint32
            ("timelock delay", self.timelock_delay_s, 0, 2**48 - 1, "seconds"),
            ("quorum", self.quorum_percent, 1, 100, "percent"),
            ("treasury share", self.treasury_bps, 0, 10_000, "bps"),
            ("claim window", self.claim_window_s, 1, 2**32 - 1, "seconds"),  # MAX_CLAIM_WINDOW
        ):
            if not low <= value <= high:
                bound = f"{high:,}" if high <= 10_000 else f"2^{(high + 1).bit_length() - 1}-1"
                raise ChainError(f"{label} must be {low} to {bound} {unit}, not {value}")
