// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TensorCodec} from "../libraries/TensorCodec.sol";

/// @title OutputComparison
/// @notice Element-by-element comparison of two encoded outputs under a version's tolerance, safe against
///         bytes that do not decode and against a caller who starves it of gas.
abstract contract OutputComparison {
    /// @notice Comparing two outputs ran out of gas: retry with more (a comparison that fails for want of
    ///         gas is never taken as a disagreement).
    error ComparisonOutOfGas();

    /// @notice Whether two encoded outputs agree under a version's tolerance (TensorCodec.within): what a
    ///         settlement decides when digests differ. Bytes that are not the canonical encoding of tensors
    ///         agree with nothing (so they cost linear gas to refuse, and the accepted output is always
    ///         one a relayer could have produced).
    /// @param a one output
    /// @param b another output
    /// @param units absolute part in units of the last decimal
    /// @param ppm relative part in millionths
    /// @return true when every element pair is within the tolerance
    function outputsWithin(bytes calldata a, bytes calldata b, uint32 units, uint32 ppm)
        external
        pure
        returns (bool)
    {
        if (!TensorCodec.isCanonical(a) || !TensorCodec.isCanonical(b)) return false;
        return TensorCodec.within(TensorCodec.decodeCalldata(a), TensorCodec.decodeCalldata(b), units, ppm);
    }

    /// @dev Whether two different outputs agree under (units, ppm). An error output agrees with nothing
    ///      but itself; bytes that do not decode agree with nothing. The comparison runs in a call of its
    ///      own so malformed bytes cannot revert a settlement; a call that ran out of gas reverts the whole
    ///      transaction instead, so no caller can starve it to turn agreement into slashable dissent.
    function _within(bytes memory a, bytes memory b, uint32 units, uint32 ppm) internal view returns (bool) {
        if (TensorCodec.errorCodeOf(a) != 0 || TensorCodec.errorCodeOf(b) != 0) return false;
        uint256 before = gasleft();
        try this.outputsWithin(a, b, units, ppm) returns (bool agree) {
            return agree;
        } catch {
            if (gasleft() <= before / 63) revert ComparisonOutOfGas();
            return false;
        }
    }
}
