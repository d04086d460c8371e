// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Governor} from "@openzeppelin/contracts/governance/Governor.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {GovernorCountingSimple} from "@openzeppelin/contracts/governance/extensions/GovernorCountingSimple.sol";
import {GovernorVotes} from "@openzeppelin/contracts/governance/extensions/GovernorVotes.sol";
import {GovernorVotesQuorumFraction} from
    "@openzeppelin/contracts/governance/extensions/GovernorVotesQuorumFraction.sol";
import {GovernorTimelockControl} from "@openzeppelin/contracts/governance/extensions/GovernorTimelockControl.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title The operators' governor.
/// @notice OpenZeppelin's Governor with simple counting (for, against, abstain), voting power
/// from OperatorVotes (one per operator), a quorum that is a percentage of the operators rounded
/// up, and a TimelockController that executes what passed after its delay. A proposal needs the
/// proposer to be an operator (threshold 1 vote). Votes may be cast by anyone holding the
/// operator's EIP-712 signature (castVoteBySig), so any node can relay them. A vote from an
/// address that was not an operator at the proposal's snapshot is refused, never counted with
/// weight 0.
contract FederationGovernor is
    Governor,
    GovernorSettings,
    GovernorCountingSimple,
    GovernorVotes,
    GovernorVotesQuorumFraction,
    GovernorTimelockControl
{
    /// @notice `voter` had no vote at the proposal's snapshot: it was not an operator then.
    error GovernorNotOperator(address voter);

    constructor(
        IVotes operatorVotes,
        TimelockController timelock,
        uint48 votingDelaySeconds,
        uint32 votingPeriodSeconds,
        uint256 quorumPercent
    )
        Governor("FPAI Federation")
        GovernorSettings(votingDelaySeconds, votingPeriodSeconds, 1)
        GovernorVotes(operatorVotes)
        GovernorVotesQuorumFraction(quorumPercent)
        GovernorTimelockControl(timelock)
    {}

    /// @notice The votes (for plus abstain) a proposal needs: `quorumPercent` of the operators at
    /// the snapshot, rounded up, so that 51% of 3 operators is 2, never 1.
    function quorum(uint256 timepoint)
        public
        view
        override(Governor, GovernorVotesQuorumFraction)
        returns (uint256)
    {
        return Math.mulDiv(
            token().getPastTotalSupply(timepoint),
            quorumNumerator(timepoint),
            quorumDenominator(),
            Math.Rounding.Ceil
        );
    }

    /// @dev Every way of voting (castVote*, castVote*BySig) reaches here through Governor's
    /// _castVote with the voter's weight at the proposal's snapshot. Refusing a zero weight here
    /// reverts the whole call: nothing is counted, `hasVoted` stays false and a ballot's nonce is
    /// not spent, so a relayer learns it from the estimate before paying gas.
    function _countVote(
        uint256 proposalId,
        address account,
        uint8 support,
        uint256 totalWeight,
        bytes memory params
    ) internal override(Governor, GovernorCountingSimple) returns (uint256) {
        if (totalWeight == 0) {
            revert GovernorNotOperator(account);
        }
        return super._countVote(proposalId, account, support, totalWeight, params);
    }

    function votingDelay() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingDelay();
    }

    function votingPeriod() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.votingPeriod();
    }

    function proposalThreshold() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.proposalThreshold();
    }

    function state(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (ProposalState)
    {
        return super.state(proposalId);
    }

    function proposalNeedsQueuing(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (bool)
    {
        return super.proposalNeedsQueuing(proposalId);
    }

    function _queueOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint48) {
        return super._queueOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _executeOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) {
        super._executeOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    function _cancel(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint256) {
        return super._cancel(targets, values, calldatas, descriptionHash);
    }

    function _executor() internal view override(Governor, GovernorTimelockControl) returns (address) {
        return super._executor();
    }
}
