// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title A stablecoin for testnets only: anyone may mint it.
/// @notice Six decimals, like USDC. Worth nothing: never deploy it where value is at stake.
contract TestStablecoin is ERC20 {
    constructor() ERC20("FPAI Test Dollar", "tUSD") {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
