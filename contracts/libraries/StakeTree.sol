// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {EpochHistory} from "./EpochHistory.sol";

/// @title StakeTree
/// @notice A Fenwick (binary indexed) tree of operator weights for stake-weighted sampling
///         without replacement. Updates and each draw cost O(log n) storage reads, so the
///         committee draw does not grow linearly with the number of operators.
/// @dev Every cell remembers its value per epoch (EpochHistory): a draw reads the tree as it stood
///      at the end of a given epoch, so nothing written after that epoch can move the draw. Slots
///      are 1-based and never reused by another member; a member leaving a pool keeps its slot at
///      weight zero and gets it back when it returns.
library StakeTree {
    using EpochHistory for EpochHistory.Cell;

    struct Tree {
        /// @dev total weight (128 bits) | size (32 bits) << 128 | members with weight (32 bits) << 160
        EpochHistory.Cell meta;
        mapping(uint256 slot => EpochHistory.Cell) nodes;
        mapping(uint256 slot => EpochHistory.Cell) weights;
        mapping(uint256 slot => address) members;
    }

    /// @notice Totals of a tree at one point.
    struct Meta {
        uint256 total;
        uint256 size;
        uint256 eligible;
    }

    /// @notice Adds a member at weight zero in `epoch`; returns its slot.
    function append(Tree storage tree, address member, uint256 epoch) internal returns (uint32 slot) {
        Meta memory m = _unpack(tree.meta.latest());
        slot = uint32(++m.size);
        // The new node covers (slot - lowbit(slot), slot]: the sum of the nodes below it.
        uint256 floor = slot - _lowbit(slot);
        uint256 sum;
        for (uint256 j = slot - 1; j > floor; j -= _lowbit(j)) {
            sum += tree.nodes[j].latest();
        }
        if (sum != 0) tree.nodes[slot].set(sum, epoch);
        tree.members[slot] = member;
        tree.meta.set(_pack(m), epoch);
    }

    /// @notice Sets a slot's weight in `epoch`, keeping the total and the eligible count in step.
    function set(Tree storage tree, uint256 slot, uint256 weight, uint256 epoch) internal {
        uint256 old = tree.weights[slot].latest();
        if (old == weight) return;
        tree.weights[slot].set(weight, epoch);
        Meta memory m = _unpack(tree.meta.latest());
        if (old == 0) ++m.eligible;
        else if (weight == 0) --m.eligible;
        uint256 size = m.size;
        if (weight > old) {
            uint256 delta = weight - old;
            m.total += delta;
            for (uint256 i = slot; i <= size; i += _lowbit(i)) {
                tree.nodes[i].set(tree.nodes[i].latest() + delta, epoch);
            }
        } else {
            uint256 delta = old - weight;
            m.total -= delta;
            for (uint256 i = slot; i <= size; i += _lowbit(i)) {
                tree.nodes[i].set(tree.nodes[i].latest() - delta, epoch);
            }
        }
        tree.meta.set(_pack(m), epoch);
    }

    /// @notice The tree's totals as written last.
    function latestMeta(Tree storage tree) internal view returns (Meta memory) {
        return _unpack(tree.meta.latest());
    }

    /// @notice The tree's totals at the end of `epoch`.
    function metaAt(Tree storage tree, uint256 epoch) internal view returns (Meta memory) {
        return _unpack(tree.meta.at(epoch));
    }

    /// @notice A slot's weight as written last.
    function weightOf(Tree storage tree, uint256 slot) internal view returns (uint256) {
        return tree.weights[slot].latest();
    }

    /// @notice Draws `k` distinct members with probability proportional to their weight at the end
    ///         of `epoch`.
    /// @dev The caller checks that at least `k` members had weight then. Members drawn earlier are
    ///      excluded by subtracting their weight from every node on the descent.
    ///      Returns the members and their slots, in draw order.
    function draw(Tree storage tree, uint256 k, uint256 seed, uint256 epoch)
        internal
        view
        returns (address[] memory committee, uint256[] memory chosenSlots)
    {
        committee = new address[](k);
        chosenSlots = new uint256[](k);
        uint256[] memory chosenWeights = new uint256[](k);
        Meta memory m = _unpack(tree.meta.at(epoch));
        uint256 size = m.size;
        uint256 top = _highestPowerOfTwo(size);
        uint256 remaining = m.total;
        for (uint256 j = 0; j < k; ++j) {
            uint256 target = uint256(keccak256(abi.encode(seed, j))) % remaining;
            uint256 pos = 0;
            for (uint256 step = top; step != 0; step >>= 1) {
                uint256 next = pos + step;
                if (next > size) continue;
                uint256 weight = tree.nodes[next].at(epoch);
                for (uint256 c = 0; c < j; ++c) {
                    if (chosenSlots[c] > pos && chosenSlots[c] <= next) weight -= chosenWeights[c];
                }
                if (weight <= target) {
                    pos = next;
                    target -= weight;
                }
            }
            uint256 slot = pos + 1;
            uint256 chosenWeight = tree.weights[slot].at(epoch);
            chosenSlots[j] = slot;
            chosenWeights[j] = chosenWeight;
            remaining -= chosenWeight;
            committee[j] = tree.members[slot];
        }
    }

    /// @notice The member holding `slot` (the zero address for a slot never handed out).
    function memberAt(Tree storage tree, uint256 slot) internal view returns (address) {
        return tree.members[slot];
    }

    function _pack(Meta memory m) private pure returns (uint256) {
        return uint256(SafeCast.toUint128(m.total)) | (uint256(uint32(m.size)) << 128) | (uint256(uint32(m.eligible)) << 160);
    }

    function _unpack(uint256 word) private pure returns (Meta memory) {
        return Meta({total: uint128(word), size: uint32(word >> 128), eligible: uint32(word >> 160)});
    }

    function _lowbit(uint256 i) private pure returns (uint256) {
        return i & (~i + 1);
    }

    function _highestPowerOfTwo(uint256 n) private pure returns (uint256 p) {
        if (n == 0) return 0;
        p = 1;
        while (p <= n >> 1) p <<= 1;
    }
}
