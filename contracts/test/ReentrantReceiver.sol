// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice Test only: a destination that, when paid, tries to make the payer pay it again.
/// It swallows the failure, so the outer payment completes and a test can compare balances.
contract ReentrantReceiver {
    address public target;
    bytes public callback;
    uint256 public attempts;
    uint256 public failures;

    function arm(address target_, bytes calldata callback_) external {
        target = target_;
        callback = callback_;
    }

    receive() external payable {
        if (target == address(0)) return;
        attempts++;
        (bool ok,) = target.call(callback);
        if (!ok) failures++;
    }
}
