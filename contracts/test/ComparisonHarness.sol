// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {OutputComparison} from "../modes/OutputComparison.sol";

/// @notice Exposes the modes' guarded comparison so a test can call it with any gas (test only).
contract ComparisonHarness is OutputComparison {
    /// @notice `_within` as a settlement runs it.
    function within(bytes calldata a, bytes calldata b, uint32 units, uint32 ppm) external view returns (bool) {
        return _within(a, b, units, ppm);
    }
}
