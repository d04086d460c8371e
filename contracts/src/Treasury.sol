// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fund} from "./Fund.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC4626} from "@openzeppelin/contracts/interfaces/IERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title The treasury side of the Sacred Loop.
/// @notice Holds the treasury share of revenue and earns yield in the ERC-4626 vault governance
/// chose. Every movement (choosing the vault, depositing, withdrawing, paying) is governance only.
/// Deposits go to the chosen vault; withdrawals name their vault, so a position left in a vault
/// governance moved away from can always be taken out (anyone can give the treasury shares of a
/// vault, so "no shares left" cannot be a condition for moving).
contract Treasury is Fund {
    using SafeERC20 for IERC20;

    /// @notice The vault new deposits go to; address(0) before any choice.
    IERC4626 public vault;

    event VaultChosen(address indexed vault, address indexed asset);
    event Deposited(address indexed vault, uint256 assets, uint256 shares);
    event Withdrawn(address indexed vault, uint256 assets, uint256 shares);

    error NoVault();

    constructor(address governance) Fund(governance) {}

    /// @notice Chooses the vault the treasury's deposits go to. Governance only.
    function chooseVault(IERC4626 newVault) external onlyOwner {
        if (address(newVault) == address(0)) revert ZeroAddress();
        vault = newVault;
        emit VaultChosen(address(newVault), newVault.asset());
    }

    /// @notice Deposits `assets` of the chosen vault's asset into it. Governance only.
    function deposit(uint256 assets) external onlyOwner nonReentrant returns (uint256 shares) {
        IERC4626 chosen = vault;
        if (address(chosen) == address(0)) revert NoVault();
        IERC20(chosen.asset()).forceApprove(address(chosen), assets);
        shares = chosen.deposit(assets, address(this));
        emit Deposited(address(chosen), assets, shares);
    }

    /// @notice Withdraws `assets` from `from` (any vault the treasury holds shares of) back to
    /// the treasury. Governance only.
    function withdraw(IERC4626 from, uint256 assets)
        external
        onlyOwner
        nonReentrant
        returns (uint256 shares)
    {
        shares = from.withdraw(assets, address(this), address(this));
        emit Withdrawn(address(from), assets, shares);
    }

    /// @notice Redeems `shares` of `from` (all of them, yield included, with type(uint256).max)
    /// back to the treasury. Governance only.
    function redeem(IERC4626 from, uint256 shares)
        external
        onlyOwner
        nonReentrant
        returns (uint256 assets)
    {
        if (shares == type(uint256).max) shares = from.balanceOf(address(this));
        assets = from.redeem(shares, address(this), address(this));
        emit Withdrawn(address(from), assets, shares);
    }

    /// @notice What the treasury's shares of the chosen vault are worth now, in its asset.
    function vaultValue() external view returns (uint256) {
        if (address(vault) == address(0)) return 0;
        return vault.convertToAssets(vault.balanceOf(address(this)));
    }
}
