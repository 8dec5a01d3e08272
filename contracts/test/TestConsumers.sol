// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {InferenceConsumer} from "../consumer/InferenceConsumer.sol";
import {IInferenceHub} from "../interfaces/IInferenceHub.sol";

/// @notice Records what it receives (test only).
contract RecordingConsumer is InferenceConsumer {
    uint256 public lastRequestId;
    uint8 public lastStatus;
    bytes public lastOutput;
    uint256 public calls;

    constructor(IInferenceHub hub_) InferenceConsumer(hub_) {}

    function _onInferenceResult(uint256 requestId, IInferenceHub.Status status, bytes calldata output)
        internal
        override
    {
        lastRequestId = requestId;
        lastStatus = uint8(status);
        lastOutput = output;
        ++calls;
    }
}

/// @notice Always reverts, with a large revert payload (test only).
contract RevertingConsumer is InferenceConsumer {
    error Boom(bytes payload);

    constructor(IInferenceHub hub_) InferenceConsumer(hub_) {}

    function _onInferenceResult(uint256, IInferenceHub.Status, bytes calldata) internal pure override {
        revert Boom(new bytes(10_000));
    }
}

/// @notice Burns all the gas it is given (test only).
contract GasBurnerConsumer is InferenceConsumer {
    uint256 public counter;

    constructor(IInferenceHub hub_) InferenceConsumer(hub_) {}

    function _onInferenceResult(uint256, IInferenceHub.Status, bytes calldata) internal override {
        while (true) ++counter;
    }
}

/// @notice Keeps the digest and status of each result: the storage a typical dapp callback writes
///         (one slot per request), used by the benchmark (test only).
contract DigestConsumer is InferenceConsumer {
    mapping(uint256 requestId => bytes32) public digests;

    constructor(IInferenceHub hub_) InferenceConsumer(hub_) {}

    function _onInferenceResult(uint256 requestId, IInferenceHub.Status status, bytes calldata output)
        internal
        override
    {
        digests[requestId] = keccak256(abi.encodePacked(uint8(status), output));
    }
}
