// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice An ERC20 that burns 1% of every transfer, so the receiver gets less than was sent; for
///         testing that escrow and staking refuse such tokens (test only).
contract FeeOnTransferToken is ERC20 {
    /// @notice Share of each transfer burnt, in basis points.
    uint256 public constant FEE_BPS = 100;

    constructor() ERC20("Fee On Transfer", "FOT") {}

    /// @notice Whether transfers take the fee (on from the start).
    bool public feeOn = true;

    /// @notice Turns the fee on or off; anyone may call.
    /// @param on whether transfers take the fee
    function setFeeOn(bool on) external {
        feeOn = on;
    }

    /// @notice Mints `amount` to `to`; anyone may call.
    /// @param to receiver
    /// @param amount tokens
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0) || !feeOn) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = (value * FEE_BPS) / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
