// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fund} from "./Fund.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC4626} from "@openzeppelin/contracts/interfaces/IERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title The treasury side of the Sacred Loop.
/// @notice Holds the treasury share of revenue and earns yield in the one ERC-4626 vault governance
/// chose. Every movement (choosing the vault, depositing, withdrawing, paying) is governance only.
contract Treasury is Fund {
    using SafeERC20 for IERC20;

    /// @notice The vault governance chose; address(0) before any choice.
    IERC4626 public vault;

    event VaultChosen(address indexed vault, address indexed asset);
    event Deposited(address indexed vault, uint256 assets, uint256 shares);
    event Withdrawn(address indexed vault, uint256 assets, uint256 shares);

    error NoVault();
    /// @dev The treasury still holds shares of the vault it would leave: withdraw them first.
    error VaultNotEmpty(address vault, uint256 shares);

    constructor(address governance) Fund(governance) {}

    /// @notice Chooses the vault the treasury's deposits go to. Governance only; refused while
    /// the treasury holds shares of the current one, so no position is ever forgotten.
    function chooseVault(IERC4626 newVault) external onlyOwner {
        if (address(newVault) == address(0)) revert ZeroAddress();
        if (address(vault) != address(0)) {
            uint256 shares = vault.balanceOf(address(this));
            if (shares != 0) revert VaultNotEmpty(address(vault), shares);
        }
        vault = newVault;
        emit VaultChosen(address(newVault), newVault.asset());
    }

    /// @notice Deposits `assets` of the vault's asset into the vault. Governance only.
    function deposit(uint256 assets) external onlyOwner nonReentrant returns (uint256 shares) {
        IERC4626 chosen = _chosen();
        IERC20(chosen.asset()).forceApprove(address(chosen), assets);
        shares = chosen.deposit(assets, address(this));
        emit Deposited(address(chosen), assets, shares);
    }

    /// @notice Withdraws `assets` of the vault's asset back to the treasury. Governance only.
    function withdraw(uint256 assets) external onlyOwner nonReentrant returns (uint256 shares) {
        IERC4626 chosen = _chosen();
        shares = chosen.withdraw(assets, address(this), address(this));
        emit Withdrawn(address(chosen), assets, shares);
    }

    /// @notice Redeems `shares` (all of them, yield included, with type(uint256).max). Governance only.
    function redeem(uint256 shares) external onlyOwner nonReentrant returns (uint256 assets) {
        IERC4626 chosen = _chosen();
        if (shares == type(uint256).max) shares = chosen.balanceOf(address(this));
        assets = chosen.redeem(shares, address(this), address(this));
        emit Withdrawn(address(chosen), assets, shares);
    }

    /// @notice What the treasury's vault shares are worth now, in the vault's asset.
    function vaultValue() external view returns (uint256) {
        if (address(vault) == address(0)) return 0;
        return vault.convertToAssets(vault.balanceOf(address(this)));
    }

    function _chosen() private view returns (IERC4626) {
        if (address(vault) == address(0)) revert NoVault();
        return vault;
    }
}
