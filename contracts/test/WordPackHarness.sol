// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {WordPack} from "../libraries/WordPack.sol";

/// @notice Exposes WordPack to tests (test only).
contract WordPackHarness {
    function pack(bytes calldata data) external pure returns (bytes memory) {
        return WordPack.pack(data);
    }

    function roundTrip(bytes calldata data) external pure returns (bytes memory) {
        return WordPack.unpack(WordPack.pack(data));
    }
}
