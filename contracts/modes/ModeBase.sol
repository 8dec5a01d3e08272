// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IInferenceHub} from "../interfaces/IInferenceHub.sol";
import {IOperatorStaking} from "../interfaces/IOperatorStaking.sol";
import {IDrawExclusion} from "../interfaces/IDrawExclusion.sol";
import {IVerificationMode} from "../interfaces/IVerificationMode.sol";
import {OutputStore} from "../libraries/OutputStore.sol";
import {OutputComparison} from "./OutputComparison.sol";

/// @title ModeBase
/// @notice What every mode contract shares: the link to the core, the committee draw (from a seed
///         block's hash over stake fixed before that hash existed), member lookup, and outputs kept
///         once per digest in the code of data contracts (`OutputStore`). Each mode keeps its
///         committees itself, beside its own round state, so an operator transaction touches one
///         contract.
abstract contract ModeBase is IVerificationMode, IDrawExclusion, OutputComparison, AccessControl, ReentrancyGuardTransient {
    /// @dev blockhash() reaches back this many blocks.
    uint256 internal constant SEED_HORIZON = 256;
    uint256 internal constant BPS = 10_000;

    /// @notice The core this mode settles into.
    IInferenceHub public immutable hub;
    /// @notice Operator stake and the committee draw.
    IOperatorStaking public immutable staking;

    /// @dev Committee members by position; the committee's size is the request's k.
    mapping(uint256 requestId => mapping(uint256 member => address)) private _members;
    /// @dev Outputs by digest, stored once however many requests share them; the first data contract.
    mapping(bytes32 digest => address) private _outputPointers;
    /// @dev An operator the request's draw leaves out (zero: none), set by `excludeFromDraw`.
    mapping(uint256 requestId => address) private _excluded;

    /// @notice A request's committee was drawn.
    /// @param requestId the request
    /// @param committee the drawn operators, in member-index order
    event CommitteeDrawn(uint256 indexed requestId, address[] committee);
    /// @notice A request's draw will leave `operator` out.
    /// @param requestId the request
    /// @param operator the excluded operator
    event ExcludedFromDraw(uint256 indexed requestId, address operator);

    /// @notice No round of this mode has this request id.
    error UnknownRequest(uint256 requestId);
    /// @notice The round has ended.
    error RoundClosed(uint256 requestId);
    /// @notice The seed block has not been mined yet: nobody can know the committee.
    error SeedNotReady(uint256 requestId, uint256 seedBlock);
    /// @notice The seed block is older than 256 blocks: the committee can no longer be drawn.
    error SeedUnavailable(uint256 requestId, uint256 seedBlock);
    /// @notice The caller is not on the request's committee.
    error NotCommitteeMember(uint256 requestId, address operator);
    /// @notice The output is longer than the request's maxOutputBytes (put forward the OUTPUT_TOO_LARGE error).
    error OutputTooLarge(uint256 requestId, uint256 size, uint256 max);
    /// @notice The data contract holding an output could not be created.
    error OutputNotStored(bytes32 digest);
    /// @notice The batch arrays differ in length or are empty.
    error BatchLengthMismatch();
    /// @notice A parameter is out of range.
    error InvalidParams();
    /// @notice Only the requester, a mode contract, may exclude an operator, once, before the seed block.
    error ExclusionRefused(uint256 requestId, address caller);

    /// @param hub_ the core; it must register this contract for the mode's bit
    /// @param staking_ operator staking (the core's)
    /// @param admin holder of DEFAULT_ADMIN_ROLE (sets the mode's parameters)
    constructor(IInferenceHub hub_, IOperatorStaking staking_, address admin) {
        if (address(hub_) == address(0) || address(staking_) == address(0) || admin == address(0)) {
            revert InvalidParams();
        }
        hub = hub_;
        staking = staking_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice A request's committee in member-index order; empty until drawn.
    /// @param requestId the request
    /// @return committee members
    function getCommittee(uint256 requestId) external view returns (address[] memory) {
        (uint256 k,, bool drawn) = _drawState(requestId);
        return drawn ? _committee(requestId, k) : new address[](0);
    }

    /// @notice The committee a request has or will have: the stored one, or the draw its seed gives
    ///         now. Reverts SeedNotReady before the seed block exists.
    /// @param requestId the request
    /// @return committee members
    function previewCommittee(uint256 requestId) external view returns (address[] memory) {
        (uint256 k, uint256 seedBlock, bool drawn) = _drawState(requestId);
        if (drawn) return _committee(requestId, k);
        return _previewDraw(requestId, k, seedBlock);
    }

    /// @inheritdoc IDrawExclusion
    /// @dev The committee is then drawn as k + 1 members with `operator` taken out (or the last one when
    ///      it was not drawn), so the pool must hold k + 1 eligible operators.
    function excludeFromDraw(uint256 requestId, address operator) external {
        (, uint256 seedBlock,) = _drawState(requestId);
        if (hub.getRequest(requestId).requester != msg.sender || !_isMode(msg.sender)) {
            revert ExclusionRefused(requestId, msg.sender);
        }
        if (operator == address(0) || block.number >= seedBlock || _excluded[requestId] != address(0)) {
            revert ExclusionRefused(requestId, msg.sender);
        }
        _excluded[requestId] = operator;
        emit ExcludedFromDraw(requestId, operator);
    }

    /// @notice The operator a request's draw leaves out (zero: none).
    /// @param requestId the request
    /// @return operator the excluded operator
    function excludedFrom(uint256 requestId) external view returns (address) {
        return _excluded[requestId];
    }

    modifier onlyHub() {
        if (msg.sender != address(hub)) revert OnlyHub(msg.sender);
        _;
    }

    /// @dev The round's committee size, seed block and whether its committee is stored; reverts
    ///      UnknownRequest for a request this mode never opened.
    function _drawState(uint256 requestId) internal view virtual returns (uint256 k, uint256 seedBlock, bool drawn);

    /// @dev A member's stake must stay slashable for the whole life of every request it can be drawn
    ///      for: an unbonding operator is drawn on its old weight until its epoch ends, then the round
    ///      runs `window` blocks, then the core's grace before `expire`.
    function _checkUnbondingCovers(uint256 window) internal view {
        uint256 span = staking.epochBlocks() + 1 + window + hub.EXPIRY_GRACE();
        if (span > staking.unbondingPeriod()) revert InvalidParams();
    }

    /// @dev Reverts unless the seed block's hash is readable: after it is mined, for 256 blocks.
    function _seed(uint256 requestId, uint256 seedBlock) internal view returns (uint256) {
        if (block.number <= seedBlock) revert SeedNotReady(requestId, seedBlock);
        bytes32 hash = blockhash(seedBlock);
        if (hash == bytes32(0)) revert SeedUnavailable(requestId, seedBlock);
        return uint256(keccak256(abi.encode(hash, requestId)));
    }

    /// @dev Draws and keeps the committee (the caller marks its round drawn).
    function _draw(uint256 requestId, uint256 k, uint256 seedBlock) internal returns (address[] memory committee) {
        uint256[] memory slots;
        address excluded = _excluded[requestId];
        uint256 n = excluded == address(0) ? k : k + 1;
        (committee, slots) =
            staking.drawCommitteeSlots(hub.poolOf(requestId), n, _seed(requestId, seedBlock), seedBlock);
        if (excluded != address(0)) _dropOne(committee, slots, excluded);
        _keepCommittee(requestId, committee, slots);
        emit CommitteeDrawn(requestId, committee);
    }

    /// @dev Stores a drawn committee: by default one address per member, so that a member's own
    ///      transaction finds its index with a few reads (`_memberIndex`). A mode that rarely looks a
    ///      member up again keeps the pool slots instead (see AttestedMode).
    function _keepCommittee(uint256 requestId, address[] memory committee, uint256[] memory) internal virtual {
        mapping(uint256 => address) storage members = _members[requestId];
        for (uint256 i = 0; i < committee.length; ++i) {
            members[i] = committee[i];
        }
    }

    /// @dev Whether the committee can still be drawn: the seed is readable and the pool did not shrink
    ///      below k (otherwise the request expires with a full refund and nobody is penalized).
    function _drawable(uint256 requestId, uint256 k, uint256 seedBlock) internal view returns (bool) {
        if (block.number > seedBlock + SEED_HORIZON) return false;
        uint256 n = _excluded[requestId] == address(0) ? k : k + 1;
        return staking.eligibleAt(hub.poolOf(requestId), seedBlock) >= n;
    }

    /// @dev The committee a request will have, as drawn now (reverts while the seed is not readable).
    function _previewDraw(uint256 requestId, uint256 k, uint256 seedBlock) internal view returns (address[] memory) {
        address excluded = _excluded[requestId];
        if (excluded == address(0)) {
            return staking.drawCommittee(hub.poolOf(requestId), k, _seed(requestId, seedBlock), seedBlock);
        }
        (address[] memory committee, uint256[] memory slots) =
            staking.drawCommitteeSlots(hub.poolOf(requestId), k + 1, _seed(requestId, seedBlock), seedBlock);
        _dropOne(committee, slots, excluded);
        return committee;
    }

    /// @dev Takes `excluded` out of a draw of k + 1 members (the last member when it was not drawn),
    ///      keeping the others' order: a uniform draw of k among the pool without `excluded`.
    function _dropOne(address[] memory committee, uint256[] memory slots, address excluded) private pure {
        uint256 k = committee.length - 1;
        bool shifting;
        for (uint256 i = 0; i < k; ++i) {
            if (committee[i] == excluded) shifting = true;
            if (shifting) {
                committee[i] = committee[i + 1];
                slots[i] = slots[i + 1];
            }
        }
        assembly ("memory-safe") {
            mstore(committee, k)
            mstore(slots, k)
        }
    }

    /// @dev Whether `account` is one of the hub's mode contracts.
    function _isMode(address account) private view returns (bool) {
        for (uint256 bit = 1; bit <= 0x80; bit <<= 1) {
            if (hub.modeContract(uint8(bit)) == account) return true;
        }
        return false;
    }

    /// @dev A member's index in a committee kept by the default `_keepCommittee`.
    function _memberIndex(uint256 requestId, uint256 k, address operator) internal view returns (uint256) {
        mapping(uint256 => address) storage members = _members[requestId];
        for (uint256 i = 0; i < k; ++i) {
            if (members[i] == operator) return i;
        }
        revert NotCommitteeMember(requestId, operator);
    }

    /// @dev A drawn committee, as `_keepCommittee` kept it.
    function _committee(uint256 requestId, uint256 k) internal view virtual returns (address[] memory committee) {
        committee = new address[](k);
        mapping(uint256 => address) storage members = _members[requestId];
        for (uint256 i = 0; i < k; ++i) {
            committee[i] = members[i];
        }
    }

    /// @dev `member`'s index in `committee`; NotCommitteeMember if it is not on it.
    function _indexIn(address[] memory committee, uint256 requestId, address member) internal pure returns (uint256) {
        for (uint256 i = 0; i < committee.length; ++i) {
            if (committee[i] == member) return i;
        }
        revert NotCommitteeMember(requestId, member);
    }

    /// @dev The members whose bit is set in `mask`, in member-index order.
    function _membersIn(address[] memory committee, uint256 mask) internal pure returns (address[] memory chosen) {
        uint256 n;
        for (uint256 i = 0; i < committee.length; ++i) {
            if (mask & (1 << i) != 0) ++n;
        }
        chosen = new address[](n);
        n = 0;
        for (uint256 i = 0; i < committee.length; ++i) {
            if (mask & (1 << i) != 0) chosen[n++] = committee[i];
        }
    }

    function _popcount(uint16 mask) internal pure returns (uint256 n) {
        for (; mask != 0; mask &= mask - 1) ++n;
    }

    function _storeOutput(bytes32 digest, bytes calldata output) internal {
        if (_outputPointers[digest] != address(0)) return;
        address first = OutputStore.write(output);
        if (first == address(0)) revert OutputNotStored(digest);
        _outputPointers[digest] = first;
    }

    function _loadOutput(bytes32 digest) internal view returns (bytes memory) {
        return OutputStore.read(_outputPointers[digest]);
    }
}
