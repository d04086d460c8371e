// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Test only: an ERC-20 that, on every transfer, calls back into a target (for example the
/// Sacred Loop's `distribute`, to be paid twice), swallowing a failure so the transfer completes.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public callback;
    uint256 public attempts;
    uint256 public failures;
    bool private _inside;

    constructor() ERC20("Reentrant", "RE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata callback_) external {
        target = target_;
        callback = callback_;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (target == address(0) || _inside || from == address(0)) return;
        _inside = true;
        attempts++;
        (bool ok,) = target.call(callback);
        if (!ok) failures++;
        _inside = false;
    }
}
