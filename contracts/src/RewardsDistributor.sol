// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title Rewards for contributed compute, claimed with a Merkle proof.
/// @notice Governance publishes, per epoch, the root of a Merkle tree of (operator, amount) and the
/// epoch's total, once the contract holds enough unreserved reward tokens to pay it. Each leaf is
///     keccak256(bytes.concat(keccak256(abi.encode(address operator, uint256 amount))))
/// and inner nodes hash their two children in ascending order (OpenZeppelin's MerkleProof and
/// StandardMerkleTree). Anyone may submit a claim; the tokens always go to the operator in the
/// leaf, once. After the epoch's deadline, claims stop and anyone may return what is unclaimed to
/// `returnTo` (the treasury).
contract RewardsDistributor is Ownable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    struct Epoch {
        bytes32 root;
        uint256 total;
        uint256 claimed;
        uint64 deadline;
        bool reclaimed;
    }

    IERC20 public immutable rewardToken;
    address public returnTo;
    /// @notice Seconds an epoch stays claimable after it is published.
    uint64 public claimWindow;
    /// @dev 2^32 - 1 seconds, about 136 years: any longer and a deadline could overflow.
    uint64 public constant MAX_CLAIM_WINDOW = type(uint32).max;
    /// @notice Tokens owed to published epochs and not yet claimed or returned.
    uint256 public reserved;
    mapping(uint64 epoch => Epoch) public epochs;
    mapping(uint64 epoch => mapping(address operator => bool)) public claimed;

    event EpochPublished(uint64 indexed epoch, bytes32 root, uint256 total, uint64 deadline);
    event Claimed(uint64 indexed epoch, address indexed operator, uint256 amount);
    event Reclaimed(uint64 indexed epoch, address indexed to, uint256 amount);
    event ReturnToChanged(address returnTo);
    event ClaimWindowChanged(uint64 claimWindow);

    error ZeroAddress();
    error EmptyRoot();
    error EpochExists(uint64 epoch);
    error UnknownEpoch(uint64 epoch);
    error Underfunded(uint256 available, uint256 needed);
    error AlreadyClaimed(uint64 epoch, address operator);
    error InvalidProof();
    error ZeroAmount();
    error ClaimWindowClosed(uint64 epoch, uint64 deadline);
    error ClaimWindowOpen(uint64 epoch, uint64 deadline);
    error AlreadyReclaimed(uint64 epoch);
    error InvalidWindow();

    constructor(address governance, IERC20 rewardToken_, address returnTo_, uint64 claimWindow_)
        Ownable(governance)
    {
        if (address(rewardToken_) == address(0)) revert ZeroAddress();
        rewardToken = rewardToken_;
        _setReturnTo(returnTo_);
        _setClaimWindow(claimWindow_);
    }

    /// @notice Publishes `epoch`'s reward root. Governance only; the contract must already hold
    /// `total` tokens beyond what earlier epochs reserve.
    function publish(uint64 epoch, bytes32 root, uint256 total) external onlyOwner {
        if (root == bytes32(0)) revert EmptyRoot();
        if (epochs[epoch].root != bytes32(0)) revert EpochExists(epoch);
        uint256 available = rewardToken.balanceOf(address(this)) - reserved;
        if (available < total) revert Underfunded(available, total);
        uint64 deadline = uint64(block.timestamp) + claimWindow;
        epochs[epoch] = Epoch({root: root, total: total, claimed: 0, deadline: deadline, reclaimed: false});
        reserved += total;
        emit EpochPublished(epoch, root, total, deadline);
    }

    /// @notice Pays `operator` its `amount` for `epoch`, proven by `proof`. Anyone may call it.
    function claim(uint64 epoch, address operator, uint256 amount, bytes32[] calldata proof)
        external
        nonReentrant
    {
        Epoch storage e = epochs[epoch];
        if (e.root == bytes32(0)) revert UnknownEpoch(epoch);
        if (block.timestamp > e.deadline) revert ClaimWindowClosed(epoch, e.deadline);
        if (amount == 0) revert ZeroAmount();
        if (claimed[epoch][operator]) revert AlreadyClaimed(epoch, operator);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(operator, amount))));
        if (!MerkleProof.verifyCalldata(proof, e.root, leaf)) revert InvalidProof();
        claimed[epoch][operator] = true;
        e.claimed += amount;
        // A root that promises more than its total pays no further than the total.
        if (e.claimed > e.total) revert Underfunded(e.total, e.claimed);
        reserved -= amount;
        rewardToken.safeTransfer(operator, amount);
        emit Claimed(epoch, operator, amount);
    }

    /// @notice After `epoch`'s deadline, returns what was not claimed to `returnTo`. Anyone may call it.
    function reclaim(uint64 epoch) external nonReentrant {
        Epoch storage e = epochs[epoch];
        if (e.root == bytes32(0)) revert UnknownEpoch(epoch);
        if (block.timestamp <= e.deadline) revert ClaimWindowOpen(epoch, e.deadline);
        if (e.reclaimed) revert AlreadyReclaimed(epoch);
        e.reclaimed = true;
        uint256 unclaimed = e.total - e.claimed;
        reserved -= unclaimed;
        rewardToken.safeTransfer(returnTo, unclaimed);
        emit Reclaimed(epoch, returnTo, unclaimed);
    }

    function setReturnTo(address returnTo_) external onlyOwner {
        _setReturnTo(returnTo_);
    }

    function setClaimWindow(uint64 claimWindow_) external onlyOwner {
        _setClaimWindow(claimWindow_);
    }

    function _setReturnTo(address returnTo_) private {
        if (returnTo_ == address(0)) revert ZeroAddress();
        returnTo = returnTo_;
        emit ReturnToChanged(returnTo_);
    }

    function _setClaimWindow(uint64 claimWindow_) private {
        if (claimWindow_ == 0 || claimWindow_ > MAX_CLAIM_WINDOW) revert InvalidWindow();
        claimWindow = claimWindow_;
        emit ClaimWindowChanged(claimWindow_);
    }
}
