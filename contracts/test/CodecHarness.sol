// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TensorCodec} from "../libraries/TensorCodec.sol";

/// @notice Exposes TensorCodec to tests (test only).
contract CodecHarness {
    function roundTrip(bytes calldata encoded) external pure returns (bytes memory) {
        return TensorCodec.encode(TensorCodec.decode(encoded));
    }

    function decode(bytes calldata encoded) external pure returns (TensorCodec.Tensor[] memory) {
        return TensorCodec.decode(encoded);
    }

    function valueAt(bytes calldata encoded, string calldata name, uint256 index) external pure returns (int256) {
        return TensorCodec.at(TensorCodec.find(TensorCodec.decode(encoded), name), index);
    }

    function errorOutput(uint8 code) external pure returns (bytes memory) {
        return TensorCodec.errorOutput(code);
    }

    function errorCodeOf(bytes calldata encoded) external pure returns (uint8) {
        return TensorCodec.errorCodeOf(encoded);
    }
}
