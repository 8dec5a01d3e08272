// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title EpochHistory
/// @notice A storage cell that remembers what it held at the end of each recent epoch, so a
///         committee draw can read the stake tree exactly as it stood before its seed existed.
/// @dev The head holds the latest value and the epoch it was written in; writing in a later epoch
///      first moves the head into a ring of RING past entries (oldest overwritten). Readers never
///      need more: a draw reads the epoch before its seed block, and a seed is readable for only
///      256 blocks, so at most 256 / epochBlocks + 2 entries are ever looked up (OperatorStaking
///      keeps epochs at least MIN_EPOCH_BLOCKS long to stay inside the ring).
library EpochHistory {
    /// @notice Past entries kept per cell.
    uint256 internal constant RING = 64;

    uint256 private constant VALUE_BITS = 192;
    uint256 private constant VALUE_MASK = (uint256(1) << VALUE_BITS) - 1;
    uint256 private constant EPOCH_MASK = 0xffffffff;

    struct Cell {
        /// @dev value (192 bits) | epoch written (32 bits) << 192 | past entries ever pushed (32 bits) << 224
        uint256 head;
        /// @dev count % RING => value | epoch << 192: the value that held from the end of `epoch` on
        mapping(uint256 index => uint256) ring;
    }

    /// @notice A lookup reached further back than the ring keeps.
    error HistoryUnavailable(uint256 epoch);

    /// @notice The value written last.
    function latest(Cell storage cell) internal view returns (uint256) {
        return cell.head & VALUE_MASK;
    }

    /// @notice Writes `value` in `epoch` (never earlier than the epoch of the previous write).
    function set(Cell storage cell, uint256 value, uint256 epoch) internal {
        uint256 head = cell.head;
        uint256 count = head >> 224;
        if (head != 0 && _epoch(head) != epoch) {
            cell.ring[count % RING] = head & ((uint256(1) << 224) - 1);
            ++count;
        }
        cell.head = value | (epoch << VALUE_BITS) | (count << 224);
    }

    /// @notice The value the cell held at the end of `epoch`: the last write made in `epoch` or earlier.
    function at(Cell storage cell, uint256 epoch) internal view returns (uint256) {
        uint256 head = cell.head;
        if (_epoch(head) <= epoch) return head & VALUE_MASK;
        uint256 count = head >> 224;
        if (count == 0) return 0; // first written after `epoch`
        // The newest past entry is the answer unless the cell changed in two epochs since.
        uint256 newest = cell.ring[(count - 1) % RING];
        if (_epoch(newest) <= epoch) return newest & VALUE_MASK;
        uint256 oldest = count > RING ? count - RING : 0;
        // Entries oldest..count-1 are in epoch order: find the first one written after `epoch`.
        uint256 low = oldest;
        uint256 high = count - 1;
        while (low < high) {
            uint256 mid = (low + high) / 2;
            if (_epoch(cell.ring[mid % RING]) <= epoch) low = mid + 1;
            else high = mid;
        }
        if (low == oldest) {
            if (oldest == 0) return 0;
            revert HistoryUnavailable(epoch);
        }
        return cell.ring[(low - 1) % RING] & VALUE_MASK;
    }

    function _epoch(uint256 word) private pure returns (uint256) {
        return (word >> VALUE_BITS) & EPOCH_MASK;
    }
}
