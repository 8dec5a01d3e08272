// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title WordPack
/// @notice Lossless packing of ABI-encoded bytes for storage, word by word. ABI words are mostly zero
///         or small numbers (offsets, lengths, shapes, fixed-point values), so an encoded tensor
///         output shrinks to a sixth or less and costs that much less to keep.
/// @dev Layout: the 4-byte big-endian length of the data, then per 32-byte word (the last one
///      zero-padded) one header byte and its payload:
///        0x00-0x7f  h + 1 zero words, no payload
///        0x80-0x9f  a word whose high 32 - n bytes are zero; payload its n = h - 0x7f low bytes
///        0xa0-0xbf  a word whose high 32 - n bytes are 0xff; payload its n = h - 0xa0 low bytes
library WordPack {
    /// @notice `data` packed.
    function pack(bytes calldata data) internal pure returns (bytes memory out) {
        uint256 length = data.length;
        uint256 words = (length + 31) / 32;
        // Worst case 33 bytes a word, plus the length and room for the last full-word store.
        out = new bytes(4 + words * 33 + 32);
        assembly ("memory-safe") {
            let start := add(out, 0x20)
            mstore(start, shl(224, length))
            let p := add(start, 4)
            let i := 0
            for {} lt(i, words) {} {
                let w := calldataload(add(data.offset, shl(5, i)))
                let rest := sub(length, shl(5, i))
                // Calldata after `data` belongs to other arguments: clear what lies past its end.
                if lt(rest, 32) { w := and(w, not(sub(shl(shl(3, sub(32, rest)), 1), 1))) }
                switch w
                case 0 {
                    let run := 1
                    for {} and(lt(add(i, run), words), lt(run, 128)) {} {
                        let j := add(i, run)
                        let v := calldataload(add(data.offset, shl(5, j)))
                        let r := sub(length, shl(5, j))
                        if lt(r, 32) { v := and(v, not(sub(shl(shl(3, sub(32, r)), 1), 1))) }
                        if v { break }
                        run := add(run, 1)
                    }
                    mstore8(p, sub(run, 1))
                    p := add(p, 1)
                    i := add(i, run)
                }
                default {
                    let negative := eq(byte(0, w), 0xff)
                    let x := w
                    if negative { x := not(w) }
                    // n: the bytes of x that are not zero, counted from its lowest non-zero byte up
                    let n := 0
                    if gt(x, 0xffffffffffffffffffffffffffffffff) {
                        n := 16
                        x := shr(128, x)
                    }
                    if gt(x, 0xffffffffffffffff) {
                        n := add(n, 8)
                        x := shr(64, x)
                    }
                    if gt(x, 0xffffffff) {
                        n := add(n, 4)
                        x := shr(32, x)
                    }
                    if gt(x, 0xffff) {
                        n := add(n, 2)
                        x := shr(16, x)
                    }
                    if gt(x, 0xff) {
                        n := add(n, 1)
                        x := shr(8, x)
                    }
                    if x { n := add(n, 1) }
                    switch negative
                    case 0 { mstore8(p, add(0x7f, n)) }
                    default { mstore8(p, add(0xa0, n)) }
                    mstore(add(p, 1), shl(shl(3, sub(32, n)), w))
                    p := add(add(p, 1), n)
                    i := add(i, 1)
                }
            }
            mstore(out, sub(p, start))
        }
    }

    /// @notice The data `packed` was made from.
    function unpack(bytes memory packed) internal pure returns (bytes memory data) {
        uint256 length;
        assembly ("memory-safe") {
            length := shr(224, mload(add(packed, 0x20)))
        }
        data = new bytes(((length + 31) / 32) * 32); // zeroed: zero-word runs are skipped over
        assembly ("memory-safe") {
            let p := add(packed, 0x24)
            let end := add(add(packed, 0x20), mload(packed))
            let dst := add(data, 0x20)
            for {} lt(p, end) {} {
                let h := byte(0, mload(p))
                p := add(p, 1)
                switch lt(h, 0x80)
                case 1 { dst := add(dst, shl(5, add(h, 1))) }
                default {
                    let negative := gt(h, 0x9f)
                    let n := sub(h, 0x7f)
                    if negative { n := sub(h, 0xa0) }
                    let w := shr(shl(3, sub(32, n)), mload(p))
                    if negative { w := or(w, shl(shl(3, n), not(0))) }
                    mstore(dst, w)
                    dst := add(dst, 0x20)
                    p := add(p, n)
                }
            }
            mstore(data, length)
        }
    }
}
