// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title An ERC-4626 vault for testnets: OpenZeppelin's, with no strategy.
/// @notice Its yield is whatever is transferred to it: a test "earns" by sending the vault assets,
/// which raises the value of every share.
contract TestVault is ERC4626 {
    constructor(IERC20 asset_) ERC20("FPAI Test Vault", "tvUSD") ERC4626(asset_) {}
}
