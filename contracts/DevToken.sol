// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable2Step, Ownable} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @title DevToken
/// @notice Staking and fee token for development networks; the owner mints.
///         On real networks the hub and staking take any ERC-20 instead.
contract DevToken is ERC20, Ownable2Step {
    /// @param owner_ the minter
    constructor(address owner_) ERC20("verinfer dev token", "VDEV") Ownable(owner_) {}

    /// @notice Mints tokens (owner only).
    /// @param to recipient
    /// @param amount tokens
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
