// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title The timelock every governance decision waits in before it runs.
/// @notice OpenZeppelin's TimelockController unchanged, named for deployment. Deployed with the
/// governor as its only proposer and canceller, anyone as executor, and no admin: it owns every
/// other contract of the set, and nothing but a passed proposal acts through it.
contract FederationTimelock is TimelockController {
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}
