// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fund} from "./Fund.sol";

/// @title The growth side of the Sacred Loop.
/// @notice Receives the growth share of revenue; releases it only by a governance proposal that
/// passed and waited out the timelock.
contract GrowthFund is Fund {
    constructor(address governance) Fund(governance) {}
}
