// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";

/// @title Funds that move only by governance.
/// @notice Holds ETH and ERC-20 tokens; anyone may pay in, only the owner (the timelock) pays out.
abstract contract Fund is Ownable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @dev The token address that stands for ETH in `pay` and in events.
    address public constant ETH = address(0);

    event Received(address indexed from, uint256 amount);
    event Paid(address indexed token, address indexed to, uint256 amount);

    error ZeroAddress();

    constructor(address governance) Ownable(governance) {}

    receive() external payable {
        emit Received(msg.sender, msg.value);
    }

    /// @notice Pays `amount` of `token` (ETH for address(0)) to `to`. Governance only.
    function pay(address token, address to, uint256 amount) external onlyOwner nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        if (token == ETH) {
            Address.sendValue(payable(to), amount);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
        emit Paid(token, to, amount);
    }
}
