// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Votes} from "@openzeppelin/contracts/governance/utils/Votes.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title One vote per admitted node operator.
/// @notice A votes token that cannot be transferred or delegated: governance (the timelock, its
/// owner) admits an operator, which gives that address exactly one vote, and removes it. Votes are
/// checkpointed by timestamp (ERC-6372 "mode=timestamp"), so governance periods are in seconds on
/// any chain whatever its block time.
contract OperatorVotes is Votes, Ownable {
    mapping(address operator => bool) private _admitted;

    event OperatorAdmitted(address indexed operator);
    event OperatorRemoved(address indexed operator);

    error AlreadyOperator(address account);
    error NotOperator(address account);
    error VotesAreNotDelegable();
    error LastOperator();

    constructor(address governance, address[] memory initialOperators)
        EIP712("FPAI Operator Votes", "1")
        Ownable(governance)
    {
        for (uint256 i = 0; i < initialOperators.length; i++) {
            _admit(initialOperators[i]);
        }
    }

    /// @notice Gives `operator` one vote. Governance only.
    function admit(address operator) external onlyOwner {
        _admit(operator);
    }

    /// @notice Takes `operator`'s vote away. Governance only. Votes it already cast stand. The
    /// last operator stays: with none, nobody could ever propose again.
    function remove(address operator) external onlyOwner {
        if (!_admitted[operator]) revert NotOperator(operator);
        if (_getTotalSupply() == 1) revert LastOperator();
        _transferVotingUnits(operator, address(0), 1);
        _admitted[operator] = false;
        emit OperatorRemoved(operator);
    }

    function isOperator(address account) external view returns (bool) {
        return _admitted[account];
    }

    /// @notice The number of admitted operators now.
    function operatorCount() external view returns (uint256) {
        return _getTotalSupply();
    }

    /// @dev A vote stays with its operator: delegating would let one operator hold several.
    function delegate(address) public pure override {
        revert VotesAreNotDelegable();
    }

    function delegateBySig(address, uint256, uint256, uint8, bytes32, bytes32) public pure override {
        revert VotesAreNotDelegable();
    }

    function clock() public view override returns (uint48) {
        return uint48(block.timestamp);
    }

    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    function _admit(address operator) private {
        if (operator == address(0)) revert NotOperator(operator);
        if (_admitted[operator]) revert AlreadyOperator(operator);
        _admitted[operator] = true;
        // The unit moves to the operator's delegate: nobody on first admission (only the total
        // changes), so the self-delegation below counts it once; itself on re-admission.
        _transferVotingUnits(address(0), operator, 1);
        if (delegates(operator) == address(0)) _delegate(operator, operator);
        emit OperatorAdmitted(operator);
    }

    function _getVotingUnits(address account) internal view override returns (uint256) {
        return _admitted[account] ? 1 : 0;
    }
}
