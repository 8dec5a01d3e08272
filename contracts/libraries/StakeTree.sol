// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title StakeTree
/// @notice A Fenwick (binary indexed) tree of operator weights for stake-weighted sampling
///         without replacement. Updates and each draw cost O(log n) storage reads, so the
///         committee draw does not grow linearly with the number of operators.
/// @dev Slots are 1-based and never reused by another member; a member leaving a pool keeps
///      its slot at weight zero and gets it back when it returns.
library StakeTree {
    struct Tree {
        uint256 total;
        uint32 size;
        uint32 eligible;
        mapping(uint256 slot => uint256) nodes;
        mapping(uint256 slot => uint256) weights;
        mapping(uint256 slot => address) members;
    }

    /// @notice Adds a member at weight zero; returns its slot.
    function append(Tree storage tree, address member) internal returns (uint32 slot) {
        slot = ++tree.size;
        // The new node covers (slot - lowbit(slot), slot]: the sum of the nodes below it.
        uint256 floor = slot - _lowbit(slot);
        uint256 sum;
        for (uint256 j = slot - 1; j > floor; j -= _lowbit(j)) {
            sum += tree.nodes[j];
        }
        if (sum != 0) tree.nodes[slot] = sum;
        tree.members[slot] = member;
    }

    /// @notice Sets a slot's weight, keeping the total and the eligible count in step.
    function set(Tree storage tree, uint256 slot, uint256 weight) internal {
        uint256 old = tree.weights[slot];
        if (old == weight) return;
        tree.weights[slot] = weight;
        if (old == 0) ++tree.eligible;
        else if (weight == 0) --tree.eligible;
        uint256 size = tree.size;
        if (weight > old) {
            uint256 delta = weight - old;
            tree.total += delta;
            for (uint256 i = slot; i <= size; i += _lowbit(i)) tree.nodes[i] += delta;
        } else {
            uint256 delta = old - weight;
            tree.total -= delta;
            for (uint256 i = slot; i <= size; i += _lowbit(i)) tree.nodes[i] -= delta;
        }
    }

    /// @notice Draws `k` distinct members with probability proportional to weight.
    /// @dev The caller checks that at least `k` members have non-zero weight. Members drawn
    ///      earlier are excluded by subtracting their weight from every node on the descent.
    function draw(Tree storage tree, uint256 k, uint256 seed) internal view returns (address[] memory committee) {
        committee = new address[](k);
        uint256[] memory chosenSlots = new uint256[](k);
        uint256[] memory chosenWeights = new uint256[](k);
        uint256 size = tree.size;
        uint256 top = _highestPowerOfTwo(size);
        uint256 remaining = tree.total;
        for (uint256 j = 0; j < k; ++j) {
            uint256 target = uint256(keccak256(abi.encode(seed, j))) % remaining;
            uint256 pos = 0;
            for (uint256 step = top; step != 0; step >>= 1) {
                uint256 next = pos + step;
                if (next > size) continue;
                uint256 weight = tree.nodes[next];
                for (uint256 c = 0; c < j; ++c) {
                    if (chosenSlots[c] > pos && chosenSlots[c] <= next) weight -= chosenWeights[c];
                }
                if (weight <= target) {
                    pos = next;
                    target -= weight;
                }
            }
            uint256 slot = pos + 1;
            uint256 chosenWeight = tree.weights[slot];
            chosenSlots[j] = slot;
            chosenWeights[j] = chosenWeight;
            remaining -= chosenWeight;
            committee[j] = tree.members[slot];
        }
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
