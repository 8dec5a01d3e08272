// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IDrawExclusion
/// @notice A mode whose committees can leave one operator out: an escalation must not be judged by the
///         operator whose output it judges.
interface IDrawExclusion {
    /// @notice Leaves `operator` out of the committee of a request another mode contract made. Only that
    ///         requester, before the seed block, once per request.
    /// @param requestId the request
    /// @param operator who must not be on its committee
    function excludeFromDraw(uint256 requestId, address operator) external;
}
