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
        if not 0 <= self.voting_delay_s < 2**48:
            raise ChainError(f"voting delay must be 0 to 2^48-1 seconds, not {self.voting_delay_s}")
        if not 1 <= self.voting_period_s < 2**32:
            raise ChainError(
                f"voting period must be 1 to 2^32-1 seconds, not {self.voting_period_s}"
            )
        if not 0 <= self.timelock_delay_s < 2**48:
            raise ChainError(
                f"timelock delay must be 0 to 2^48-1 seconds, not {self.timelock_delay_s}"
            )
        if not 1 <= self.quorum_percent <= 100:
            raise ChainError(f"quorum must be 1 to 100 percent, not {self.quorum_percent}")
        if not 0 <= self.treasury_bps <= 10_000:
            raise ChainError(f"treasury share must be 0 to 10000 bps, not {self.treasury_bps}")
        if not 1 <= self.claim_window_s < 2**32:
            raise ChainError(f"claim window must be 1 to 2^32-1 seconds, not {self.claim_window_s}")
