// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IVerificationMode
/// @notice What the core needs from a mode contract: open a round when a request is made, say when
///         the round must be over, and tell what it accepted. The mode settles by calling the core's
///         `settle` with one outcome; everything else (who acts, in what order, on what evidence) is
///         the mode's own.
interface IVerificationMode {
    /// @notice Only the core may open rounds.
    error OnlyHub(address caller);

    /// @notice What a round is opened with.
    struct Opening {
        /// @dev committee size
        uint8 k;
        /// @dev the block whose hash seeds the committee draw
        uint40 seedBlock;
        /// @dev the largest output the round accepts
        uint32 maxOutputBytes;
        /// @dev whether only the output's digest is kept on-chain
        bool digestOnly;
        /// @dev keccak256 of the request's input: a mode that re-runs or proves the request binds to it
        bytes32 inputHash;
    }

    /// @notice Opens the round of a request the core has just escrowed.
    /// @param requestId the request
    /// @param opening what the round is opened with
    /// @return deadline the last block of the round; the core's `expire` opens EXPIRY_GRACE blocks later
    function open(uint256 requestId, Opening calldata opening) external returns (uint40 deadline);

    /// @notice The round's last block (zero for a request this mode never opened).
    /// @param requestId the request
    /// @return deadline the block
    function deadlineOf(uint256 requestId) external view returns (uint40 deadline);

    /// @notice What a settled round accepted.
    /// @param requestId the request
    /// @return digest the accepted output's digest (zero if none)
    /// @return output its bytes when stored (empty for digest-only requests and when none)
    /// @return agreeing the members who put forward the accepted output
    /// @return settledBlock the block the round ended in (zero while open)
    /// @return errorCode canonical error code of a Failed request
    function resultOf(uint256 requestId)
        external
        view
        returns (bytes32 digest, bytes memory output, address[] memory agreeing, uint40 settledBlock, uint8 errorCode);
}
