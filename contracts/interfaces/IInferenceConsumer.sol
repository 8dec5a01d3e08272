// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IInferenceConsumer
/// @notice What the hub calls when a request reaches a terminal status.
interface IInferenceConsumer {
    /// @notice Delivers a settled request. Called by the hub only, with the requester's gas limit.
    /// @param requestId the request
    /// @param status terminal status (see IInferenceHub.Status)
    /// @param output the accepted output (empty unless Finalized or Failed)
    function onInferenceResult(uint256 requestId, uint8 status, bytes calldata output) external;
}
