// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Pools
/// @notice The id of the operator pool that serves a model's versions of one execution class.
library Pools {
    /// @notice The model id itself for portable versions (class zero), else keccak256(modelId, classId).
    function id(bytes32 modelId, bytes32 classId) internal pure returns (bytes32) {
        return classId == bytes32(0) ? modelId : keccak256(abi.encode(modelId, classId));
    }
}
