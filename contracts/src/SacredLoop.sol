// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title The Sacred Loop: every unit of revenue split between the treasury and growth.
/// @notice Revenue in ETH is split as it arrives; revenue in an allowed ERC-20 is paid in with
/// `payToken` (or sent by plain transfer and split by anyone calling `distribute`). The split is
/// `treasuryBps` / 10,000 to the treasury (6,000 by default) and the rest to growth:
///     growth   = floor(amount * (10,000 - treasuryBps) / 10,000)
///     treasury = amount - growth
/// so the two always sum to exactly what came in, and the rounding remainder (less than one unit
/// of the token) goes to the treasury. The product is taken at full width (Math.mulDiv): any
/// amount up to 2^256 - 1 splits, so nobody can block revenue by inflating the balance. Only governance (the owner, the timelock) changes the
/// ratio, the destinations or the allowed tokens. The contract keeps nothing between calls.
contract SacredLoop is Ownable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    uint16 public constant BPS = 10_000;
    /// @dev The token address that stands for ETH in `distribute` and in events.
    address public constant ETH = address(0);

    address payable public treasury;
    address payable public growth;
    uint16 public treasuryBps;
    mapping(address token => bool) public allowedToken;

    event RevenueReceived(address indexed token, address indexed from, uint256 amount);
    event RevenueSplit(address indexed token, uint256 amount, uint256 toTreasury, uint256 toGrowth);
    event SplitChanged(uint16 treasuryBps, uint16 growthBps);
    event DestinationsChanged(address treasury, address growth);
    event TokenAllowed(address indexed token, bool allowed);

    error InvalidSplit(uint256 treasuryBps);
    error ZeroAddress();
    error TokenNotAllowed(address token);

    constructor(
        address governance,
        address payable treasury_,
        address payable growth_,
        uint16 treasuryBps_,
        address[] memory allowedTokens
    ) Ownable(governance) {
        _setDestinations(treasury_, growth_);
        _setSplit(treasuryBps_);
        for (uint256 i = 0; i < allowedTokens.length; i++) {
            _allow(allowedTokens[i], true);
        }
    }

    /// @notice ETH revenue: split at once, this payment and any ETH the contract was forced to hold.
    receive() external payable nonReentrant {
        emit RevenueReceived(ETH, msg.sender, msg.value);
        _split(ETH);
    }

    /// @notice Pays `amount` of an allowed `token` (approved to this contract first) and splits it.
    function payToken(address token, uint256 amount) external nonReentrant {
        if (!allowedToken[token]) revert TokenNotAllowed(token);
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        emit RevenueReceived(token, msg.sender, amount);
        _split(token);
    }

    /// @notice Splits whatever the contract holds of `token` (ETH for address(0)): revenue that
    /// arrived by plain transfer. Anyone may call it; it only ever pays the two destinations.
    function distribute(address token) external nonReentrant {
        if (token != ETH && !allowedToken[token]) revert TokenNotAllowed(token);
        _split(token);
    }

    /// @notice The split of `amount` under the current ratio, by the rule above.
    function splitOf(uint256 amount) public view returns (uint256 toTreasury, uint256 toGrowth) {
        toGrowth = Math.mulDiv(amount, BPS - treasuryBps, BPS);
        toTreasury = amount - toGrowth;
    }

    function setSplit(uint16 treasuryBps_) external onlyOwner {
        _setSplit(treasuryBps_);
    }

    function setDestinations(address payable treasury_, address payable growth_) external onlyOwner {
        _setDestinations(treasury_, growth_);
    }

    function setTokenAllowed(address token, bool allowed) external onlyOwner {
        _allow(token, allowed);
    }

    function _split(address token) private {
        uint256 amount = token == ETH ? address(this).balance : IERC20(token).balanceOf(address(this));
        if (amount == 0) return;
        (uint256 toTreasury, uint256 toGrowth) = splitOf(amount);
        emit RevenueSplit(token, amount, toTreasury, toGrowth);
        if (token == ETH) {
            if (toTreasury != 0) Address.sendValue(treasury, toTreasury);
            if (toGrowth != 0) Address.sendValue(growth, toGrowth);
        } else {
            if (toTreasury != 0) IERC20(token).safeTransfer(treasury, toTreasury);
            if (toGrowth != 0) IERC20(token).safeTransfer(growth, toGrowth);
        }
    }

    function _setSplit(uint16 treasuryBps_) private {
        if (treasuryBps_ > BPS) revert InvalidSplit(treasuryBps_);
        treasuryBps = treasuryBps_;
        emit SplitChanged(treasuryBps_, BPS - treasuryBps_);
    }

    function _setDestinations(address payable treasury_, address payable growth_) private {
        if (treasury_ == address(0) || growth_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        growth = growth_;
        emit DestinationsChanged(treasury_, growth_);
    }

    function _allow(address token, bool allowed) private {
        if (token == address(0)) revert ZeroAddress();
        allowedToken[token] = allowed;
        emit TokenAllowed(token, allowed);
    }
}
