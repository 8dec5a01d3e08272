// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {WordPack} from "./WordPack.sol";

/// @title OutputStore
/// @notice Keeps a byte string in the code of data contracts, packed word by word (`WordPack`): about
///         200 gas a stored byte instead of 20,000 a 32-byte storage word. A string too large for one
///         contract (EIP-170: 24,576 bytes of code) is a chain of them, each naming the next.
/// @dev A data contract's code is a STOP (so it can never run), the address of the next chunk (zero
///      for the last) and up to `CHUNK_BYTES` of packed data. The caller keeps the first address.
library OutputStore {
    /// @dev EIP-170's limit less the leading STOP and the 20-byte address of the next chunk.
    uint256 private constant CHUNK_BYTES = 24_555;
    uint256 private constant HEADER = 21;

    /// @notice Stores `data`; returns the first chunk's address, or zero if a chunk could not be created.
    function write(bytes calldata data) internal returns (address first) {
        bytes memory packed = WordPack.pack(data);
        uint256 chunks = packed.length == 0 ? 1 : (packed.length + CHUNK_BYTES - 1) / CHUNK_BYTES;
        // Last chunk first, so each chunk can name the one after it.
        for (uint256 i = chunks; i > 0; --i) {
            uint256 start = (i - 1) * CHUNK_BYTES;
            uint256 end = start + CHUNK_BYTES < packed.length ? start + CHUNK_BYTES : packed.length;
            first = _deployChunk(first, packed, start, end - start);
            if (first == address(0)) return address(0);
        }
    }

    /// @notice The bytes stored from `first` (empty for the zero address).
    function read(address first) internal view returns (bytes memory) {
        uint256 total;
        for (address p = first; p != address(0); p = _next(p)) total += p.code.length - HEADER;
        bytes memory packed = new bytes(total);
        uint256 offset;
        for (address p = first; p != address(0); p = _next(p)) {
            uint256 size = p.code.length - HEADER;
            assembly ("memory-safe") {
                extcodecopy(p, add(add(packed, 0x20), offset), HEADER, size)
            }
            offset += size;
        }
        return WordPack.unpack(packed);
    }

    /// @dev Creates a data contract holding `next` and `length` bytes of `packed` from `start`. The
    ///      10-byte init code returns everything after it.
    function _deployChunk(address next, bytes memory packed, uint256 start, uint256 length)
        private
        returns (address pointer)
    {
        bytes memory init = abi.encodePacked(hex"61", uint16(length + HEADER), hex"80600a3d393df300", next);
        assembly ("memory-safe") {
            // Append the chunk after the 31 bytes of header and address, then create.
            let size := add(mload(init), length)
            let body := add(add(init, 0x20), mload(init))
            mcopy(body, add(add(packed, 0x20), start), length)
            mstore(0x40, add(body, length))
            pointer := create(0, add(init, 0x20), size)
        }
    }

    function _next(address pointer) private view returns (address next) {
        assembly ("memory-safe") {
            mstore(0, 0)
            extcodecopy(pointer, 12, 1, 20)
            next := mload(0)
        }
    }
}
