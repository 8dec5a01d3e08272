// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IInferenceHub} from "../interfaces/IInferenceHub.sol";
import {IOperatorStaking} from "../interfaces/IOperatorStaking.sol";
import {TensorCodec} from "../libraries/TensorCodec.sol";
import {IVerificationMode} from "../interfaces/IVerificationMode.sol";
import {ModeBase} from "./ModeBase.sol";

/// @title ConsensusMode
/// @notice k-of-n agreement by commit/reveal: a committee drawn from a future block's hash commits to
///         output digests, then reveals; a strict majority (k/2+1) on one output settles it, members
///         who revealed another output or withheld theirs lose the dissent rate, members who never
///         committed the silence rate. No majority is Disputed; no reveal at all is Expired. For a version
///         with a tolerance, revealed outputs that differ are compared element by element: members within
///         the tolerance of the accepted output agree with it (paid, never slashed).
contract ConsensusMode is ModeBase {
    /// @notice This mode's bit in the hub and in a version's `modes`.
    uint8 public constant MODE = 0x01;

    /// @notice Windows in blocks, slash rates in basis points; copied into each round when it opens.
    struct Params {
        /// @dev blocks after the seed block to commit; below 256 so the seed stays readable throughout
        uint32 commitWindow;
        uint32 revealWindow;
        uint16 slashBpsDissent;
        uint16 slashBpsSilence;
    }

    /// @dev One slot per request.
    struct Round {
        uint40 seedBlock;
        uint40 revealDeadline;
        /// @dev zero while the round is open
        uint40 settledBlock;
        /// @dev commits close at seedBlock + commitWindow
        uint8 commitWindow;
        uint8 k;
        uint16 committedMask;
        uint16 revealedMask;
        uint16 slashBpsDissent;
        uint16 slashBpsSilence;
        uint32 maxOutputBytes;
        uint8 errorCode;
        bool digestOnly;
        bool drawn;
    }

    /// @notice A round as off-chain code reads it.
    // solhint-disable-next-line gas-struct-packing
    struct RoundView {
        uint40 seedBlock;
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint40 settledBlock;
        uint8 k;
        uint16 committedMask;
        uint16 revealedMask;
        uint16 slashBpsDissent;
        uint16 slashBpsSilence;
        uint32 maxOutputBytes;
        uint8 errorCode;
        bool digestOnly;
        bool drawn;
    }

    Params private _params;
    mapping(uint256 requestId => Round) private _rounds;
    /// @dev Per member: the commitment until it reveals, then the revealed digest.
    mapping(uint256 requestId => mapping(uint256 member => bytes32)) private _memberHashes;
    /// @dev What a tolerance decided, kept because resultOf cannot recompute it cheaply; empty otherwise.
    mapping(uint256 requestId => Accepted) private _byTolerance;

    /// @dev An accepted digest and the members within tolerance of it.
    struct Accepted {
        bytes32 digest;
        uint16 agreeMask;
    }

    /// @notice A committee member committed.
    /// @param requestId the request
    /// @param operator the member
    /// @param commitment keccak256(abi.encode(requestId, operator, digest, salt))
    event Committed(uint256 indexed requestId, address indexed operator, bytes32 commitment);
    /// @notice A committee member revealed.
    /// @param requestId the request
    /// @param operator the member
    /// @param digest keccak256 of the revealed output
    event Revealed(uint256 indexed requestId, address indexed operator, bytes32 digest);
    /// @notice Parameters changed.
    /// @param params the new parameters
    event ParamsUpdated(Params params);

    /// @notice The commit window has closed.
    error CommitWindowClosed(uint256 requestId, uint256 deadline);
    /// @notice The member committed already.
    error AlreadyCommitted(uint256 requestId, address operator);
    /// @notice Reveals are not open yet: members are still committing.
    error RevealNotOpen(uint256 requestId);
    /// @notice The reveal window has closed.
    error RevealWindowClosed(uint256 requestId, uint256 deadline);
    /// @notice The member did not commit.
    error NotCommitted(uint256 requestId, address operator);
    /// @notice The member revealed already.
    error AlreadyRevealed(uint256 requestId, address operator);
    /// @notice Output and salt do not match the commitment.
    error CommitmentMismatch(uint256 requestId, address operator);
    /// @notice The request keeps only digests: settling it needs the accepted output's bytes.
    error OutputRequired(uint256 requestId, bytes32 digest);
    /// @notice The bytes given are not the accepted output.
    error OutputMismatch(uint256 requestId, bytes32 expected, bytes32 given);
    /// @notice The round cannot be finalized yet.
    error TooEarlyToFinalize(uint256 requestId);

    /// @param hub_ the core; it must register this contract for MODE
    /// @param staking_ operator staking (the core's)
    /// @param params_ initial parameters
    /// @param admin holder of DEFAULT_ADMIN_ROLE
    constructor(IInferenceHub hub_, IOperatorStaking staking_, Params memory params_, address admin)
        ModeBase(hub_, staking_, admin)
    {
        _setParams(params_);
    }

    // ------------------------------------------------------------------ the core

    /// @inheritdoc IVerificationMode
    function open(uint256 requestId, Opening calldata o)
        external
        onlyHub
        returns (uint40 deadline)
    {
        Params memory p = _params;
        deadline = o.seedBlock + uint40(p.commitWindow) + uint40(p.revealWindow);
        _rounds[requestId] = Round({
            seedBlock: o.seedBlock,
            revealDeadline: deadline,
            settledBlock: 0,
            commitWindow: uint8(p.commitWindow),
            k: o.k,
            committedMask: 0,
            revealedMask: 0,
            slashBpsDissent: p.slashBpsDissent,
            slashBpsSilence: p.slashBpsSilence,
            maxOutputBytes: o.maxOutputBytes,
            errorCode: 0,
            digestOnly: o.digestOnly,
            drawn: false
        });
    }

    // ------------------------------------------------------------------ operators

    /// @notice Draws and stores a request's committee once its seed block exists; anyone may call
    ///         (the first commit does it too).
    /// @param requestId the request
    /// @return committee the members in member-index order
    function draw(uint256 requestId) external nonReentrant returns (address[] memory committee) {
        Round storage r = _open(requestId);
        if (r.drawn) return _committee(requestId, r.k);
        r.drawn = true;
        return _draw(requestId, r.k, r.seedBlock);
    }

    /// @notice Commits to an output digest without revealing it (drawing the committee if needed).
    /// @param requestId the request
    /// @param commitment keccak256(abi.encode(requestId, operator, keccak256(output), salt))
    function commit(uint256 requestId, bytes32 commitment) external nonReentrant {
        _commit(requestId, commitment);
    }

    /// @notice Commits on many requests in one transaction; all or nothing.
    /// @param requestIds the requests
    /// @param commitments one commitment per request
    function commitMany(uint256[] calldata requestIds, bytes32[] calldata commitments) external nonReentrant {
        if (requestIds.length == 0 || requestIds.length != commitments.length) revert BatchLengthMismatch();
        for (uint256 i = 0; i < requestIds.length; ++i) _commit(requestIds[i], commitments[i]);
    }

    /// @notice Reveals a committed output; the last reveal settles the request.
    /// @param requestId the request
    /// @param output the abi-encoded output tensors
    /// @param salt the commitment salt
    function reveal(uint256 requestId, bytes calldata output, bytes32 salt) external nonReentrant {
        _reveal(requestId, output, salt);
    }

    /// @notice Reveals on many requests in one transaction; all or nothing.
    /// @param requestIds the requests
    /// @param outputs one output per request
    /// @param salts one salt per request
    function revealMany(uint256[] calldata requestIds, bytes[] calldata outputs, bytes32[] calldata salts)
        external
        nonReentrant
    {
        if (requestIds.length == 0 || requestIds.length != outputs.length || requestIds.length != salts.length) {
            revert BatchLengthMismatch();
        }
        for (uint256 i = 0; i < requestIds.length; ++i) _reveal(requestIds[i], outputs[i], salts[i]);
    }

    /// @notice Settles a round whose windows have run out; anyone may call.
    /// @param requestId the request
    function finalize(uint256 requestId) external nonReentrant {
        Round storage r = _open(requestId);
        if (!_finalizable(r)) revert TooEarlyToFinalize(requestId);
        _settle(requestId, r, msg.data[0:0], bytes32(0), false);
    }

    /// @notice Settles a digest-only round, supplying the accepted output's bytes.
    /// @param requestId the request
    /// @param output bytes whose keccak256 is the accepted digest
    function finalizeWithOutput(uint256 requestId, bytes calldata output) external nonReentrant {
        Round storage r = _open(requestId);
        if (!_finalizable(r)) revert TooEarlyToFinalize(requestId);
        _settle(requestId, r, output, keccak256(output), false);
    }

    // ------------------------------------------------------------------ admin

    /// @notice Replaces the parameters; rounds already open keep their windows and rates.
    /// @param params_ the new parameters
    function setParams(Params calldata params_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setParams(params_);
    }

    // ------------------------------------------------------------------ views

    /// @notice The current parameters.
    /// @return the parameters
    function params() external view returns (Params memory) {
        return _params;
    }

    /// @notice A request's round; reverts UnknownRequest for a request of another mode.
    /// @param requestId the request
    /// @return the round
    function getRound(uint256 requestId) external view returns (RoundView memory) {
        Round storage r = _known(requestId);
        return RoundView({
            seedBlock: r.seedBlock,
            commitDeadline: r.seedBlock + r.commitWindow,
            revealDeadline: r.revealDeadline,
            settledBlock: r.settledBlock,
            k: r.k,
            committedMask: r.committedMask,
            revealedMask: r.revealedMask,
            slashBpsDissent: r.slashBpsDissent,
            slashBpsSilence: r.slashBpsSilence,
            maxOutputBytes: r.maxOutputBytes,
            errorCode: r.errorCode,
            digestOnly: r.digestOnly,
            drawn: r.drawn
        });
    }

    /// @notice Whether finalize() would be allowed now (a digest-only round may still need
    ///         finalizeWithOutput).
    /// @param requestId the request
    /// @return true when the round can be settled
    function canFinalize(uint256 requestId) external view returns (bool) {
        Round storage r = _rounds[requestId];
        // The hub's `expire` may have ended the request without this round settling.
        return r.k != 0 && r.settledBlock == 0 && _finalizable(r)
            && hub.getRequest(requestId).status == IInferenceHub.Status.Pending;
    }

    /// @inheritdoc IVerificationMode
    function deadlineOf(uint256 requestId) external view returns (uint40) {
        return _rounds[requestId].revealDeadline;
    }

    /// @inheritdoc IVerificationMode
    function resultOf(uint256 requestId)
        external
        view
        returns (bytes32 digest, bytes memory output, address[] memory agreeing, uint40 settledBlock, uint8 errorCode)
    {
        Round storage r = _known(requestId);
        settledBlock = r.settledBlock;
        if (settledBlock == 0 || !r.drawn) return (digest, output, agreeing, settledBlock, 0);
        // The tally is a pure function of the reveals, which are frozen once the round settles.
        (bytes32 best, uint16 agreeMask, uint256 count) = _tally(requestId, r.k, r.revealedMask);
        Accepted memory judged = _byTolerance[requestId];
        if (judged.agreeMask != 0) (best, agreeMask, count) = (judged.digest, judged.agreeMask, _popcount(judged.agreeMask));
        if (count < uint256(r.k) / 2 + 1) return (digest, output, agreeing, settledBlock, 0);
        digest = best;
        agreeing = _membersIn(_committee(requestId, r.k), agreeMask);
        if (!r.digestOnly) output = _loadOutput(best);
        errorCode = r.errorCode;
    }

    // ------------------------------------------------------------------ internals

    function _setParams(Params memory p) private {
        if (p.commitWindow == 0 || p.commitWindow >= SEED_HORIZON || p.revealWindow == 0) revert InvalidParams();
        if (p.slashBpsDissent > BPS || p.slashBpsSilence > BPS) revert InvalidParams();
        _checkUnbondingCovers(uint256(p.commitWindow) + p.revealWindow);
        _params = p;
        emit ParamsUpdated(p);
    }

    function _drawState(uint256 requestId) internal view override returns (uint256, uint256, bool) {
        Round storage r = _known(requestId);
        return (r.k, r.seedBlock, r.drawn);
    }

    function _known(uint256 requestId) private view returns (Round storage r) {
        r = _rounds[requestId];
        if (r.k == 0) revert UnknownRequest(requestId);
    }

    function _open(uint256 requestId) private view returns (Round storage r) {
        r = _known(requestId);
        if (r.settledBlock != 0) revert RoundClosed(requestId);
    }

    function _fullMask(uint8 k) private pure returns (uint16) {
        return uint16((uint256(1) << k) - 1);
    }

    function _finalizable(Round storage r) private view returns (bool) {
        if (block.number > r.revealDeadline) return true;
        uint16 committed = r.committedMask;
        uint256 commitDeadline = uint256(r.seedBlock) + r.commitWindow;
        if (committed == 0) return block.number > commitDeadline;
        // Everyone who could reveal has (a digest-only request waiting for its output's bytes).
        return r.revealedMask == committed && (committed == _fullMask(r.k) || block.number > commitDeadline);
    }

    function _commit(uint256 requestId, bytes32 commitment) private {
        Round storage r = _open(requestId);
        uint256 commitDeadline = uint256(r.seedBlock) + r.commitWindow;
        if (block.number > commitDeadline) revert CommitWindowClosed(requestId, commitDeadline);
        if (!r.drawn) {
            r.drawn = true;
            _draw(requestId, r.k, r.seedBlock);
        }
        uint256 member = _memberIndex(requestId, r.k, msg.sender);
        uint16 bit = uint16(1 << member);
        if (r.committedMask & bit != 0) revert AlreadyCommitted(requestId, msg.sender);
        r.committedMask |= bit;
        _memberHashes[requestId][member] = commitment;
        emit Committed(requestId, msg.sender, commitment);
    }

    function _reveal(uint256 requestId, bytes calldata output, bytes32 salt) private {
        Round storage r = _open(requestId);
        uint16 full = _fullMask(r.k);
        uint256 commitDeadline = uint256(r.seedBlock) + r.commitWindow;
        if (r.committedMask != full && block.number <= commitDeadline) revert RevealNotOpen(requestId);
        if (block.number > r.revealDeadline) revert RevealWindowClosed(requestId, r.revealDeadline);
        uint256 member = _memberIndex(requestId, r.k, msg.sender);
        uint16 bit = uint16(1 << member);
        if (r.committedMask & bit == 0) revert NotCommitted(requestId, msg.sender);
        if (r.revealedMask & bit != 0) revert AlreadyRevealed(requestId, msg.sender);
        if (output.length > r.maxOutputBytes) revert OutputTooLarge(requestId, output.length, r.maxOutputBytes);
        bytes32 digest = keccak256(output);
        if (keccak256(abi.encode(requestId, msg.sender, digest, salt)) != _memberHashes[requestId][member]) {
            revert CommitmentMismatch(requestId, msg.sender);
        }
        _memberHashes[requestId][member] = digest;
        r.revealedMask |= bit;
        if (!r.digestOnly) _storeOutput(digest, output);
        emit Revealed(requestId, msg.sender, digest);
        // The last outstanding reveal settles at once: everyone who could reveal has.
        if (r.revealedMask == r.committedMask && (r.committedMask == full || block.number > commitDeadline)) {
            _settle(requestId, r, output, digest, true);
        }
    }

    /// @dev `hint` is an output in calldata whose digest is `hintDigest`, so the common case (the last
    ///      revealer agrees) needs no storage read. A digest-only request whose accepted bytes are not at
    ///      hand waits for `finalizeWithOutput` when `mayDefer`, and reverts OutputRequired otherwise.
    function _settle(uint256 requestId, Round storage r, bytes calldata hint, bytes32 hintDigest, bool mayDefer)
        private
    {
        IInferenceHub.Outcome memory outcome;
        if (!r.drawn) {
            if (!_drawable(requestId, r.k, r.seedBlock)) {
                // Nobody could be drawn: a full refund and nobody penalized.
                r.settledBlock = uint40(block.number);
                outcome.status = IInferenceHub.Status.Expired;
                hub.settle(requestId, outcome, "");
                return;
            }
            r.drawn = true;
            _draw(requestId, r.k, r.seedBlock);
        }
        uint8 k = r.k;
        uint16 revealed = r.revealedMask;
        (bytes32 best, uint16 agreeMask, uint256 agreeing) = _tally(requestId, k, revealed);
        uint16 spared = 0;
        if (agreeing != 0 && agreeing < _popcount(revealed)) {
            (best, agreeMask, agreeing, spared) = _tolerate(requestId, k, revealed, best, agreeMask, agreeing);
        }

        bytes memory output;
        if (revealed == 0) {
            outcome.status = IInferenceHub.Status.Expired;
            agreeMask = 0;
        } else if (agreeing >= k / 2 + 1) {
            if (best == hintDigest) {
                output = hint;
            } else if (!r.digestOnly) {
                output = _loadOutput(best);
            } else if (mayDefer) {
                return;
            } else if (hintDigest != bytes32(0)) {
                revert OutputMismatch(requestId, best, hintDigest);
            } else {
                revert OutputRequired(requestId, best);
            }
            outcome.errorCode = TensorCodec.errorCodeOf(output);
            outcome.status = outcome.errorCode == 0 ? IInferenceHub.Status.Finalized : IInferenceHub.Status.Failed;
            outcome.digest = best;
        } else {
            outcome.status = IInferenceHub.Status.Disputed;
            agreeMask = 0;
            agreeing = 0;
        }
        r.settledBlock = uint40(block.number);
        r.errorCode = outcome.errorCode;
        address[] memory committee = _committee(requestId, k);
        // A quorum that could not get the input did no work: nobody is paid (the fees go back).
        outcome.paid = _membersIn(committee, best == TensorCodec.INPUT_UNAVAILABLE_DIGEST ? 0 : agreeMask);
        uint16 judged = _judged(requestId, k, revealed, best, agreeing) & ~spared;
        _penalties(outcome, r, committee, revealed, agreeMask, judged);
        hub.settle(requestId, outcome, output);
    }

    /// @dev The best-supported revealed digest, who revealed it, and how many did.
    function _tally(uint256 requestId, uint256 k, uint16 revealed)
        private
        view
        returns (bytes32 best, uint16 agreeMask, uint256 agreeing)
    {
        bytes32[] memory digests = new bytes32[](k);
        mapping(uint256 => bytes32) storage hashes = _memberHashes[requestId];
        for (uint256 i = 0; i < k; ++i) {
            if (revealed & (1 << i) != 0) digests[i] = hashes[i];
        }
        for (uint256 i = 0; i < k; ++i) {
            if (revealed & (1 << i) == 0) continue;
            uint16 mask;
            uint256 count;
            for (uint256 j = 0; j < k; ++j) {
                if (revealed & (1 << j) != 0 && digests[j] == digests[i]) {
                    mask |= uint16(1 << j);
                    ++count;
                }
            }
            if (count > agreeing) {
                (best, agreeMask, agreeing) = (digests[i], mask, count);
            }
        }
    }

    /// @dev When revealed digests differ and the version has a tolerance, the distinct outputs are compared
    ///      pairwise. Among the revealed outputs that at least k/2+1 members are within tolerance of, the
    ///      accepted one is the one the most members revealed exactly, then the one the most members are
    ///      within tolerance of, then the lowest member's (an exact quorum always wins). Its group, every
    ///      member within tolerance of it, is paid. A member outside the group but within tolerance of one
    ///      of its members is `spared`: neither paid nor slashed. The group outnumbers any minority, so it
    ///      holds an honest member, and honest outputs are within the rule of each other: whatever a
    ///      minority reveals, no honest member is slashed. An exact version returns the tally unchanged.
    function _tolerate(uint256 requestId, uint256 k, uint16 revealed, bytes32 best, uint16 agreeMask, uint256 agreeing)
        private
        returns (bytes32, uint16, uint256, uint16 spared)
    {
        (uint32 units, uint32 ppm) = hub.toleranceOf(requestId);
        if ((units | ppm) == 0) return (best, agreeMask, agreeing, 0);
        (bytes32[] memory digests, uint16[] memory same) = _groups(requestId, k, revealed);
        uint16[] memory near = _near(digests, same, units, ppm);
        uint256 chosen = k;
        for (uint256 i = 0; i < k; ++i) {
            if (same[i] == 0 || _popcount(near[i]) < k / 2 + 1) continue;
            if (chosen == k || _outranks(same[i], near[i], same[chosen], near[chosen])) chosen = i;
        }
        if (chosen == k) return (best, agreeMask, agreeing, 0); // no quorum even within tolerance: Disputed
        uint16 group = near[chosen];
        for (uint256 i = 0; i < k; ++i) {
            if (same[i] & group != 0) spared |= near[i];
        }
        spared &= ~group;
        _byTolerance[requestId] = Accepted(digests[chosen], group);
        return (digests[chosen], group, _popcount(group), spared);
    }

    /// @dev Whether candidate a (revealed exactly by `sameA`, within tolerance of `nearA`) beats candidate b;
    ///      earlier members win remaining ties.
    function _outranks(uint16 sameA, uint16 nearA, uint16 sameB, uint16 nearB) private pure returns (bool) {
        (uint256 exactA, uint256 exactB) = (_popcount(sameA), _popcount(sameB));
        return exactA > exactB || (exactA == exactB && _popcount(nearA) > _popcount(nearB));
    }

    /// @dev For each group's first member, the members whose outputs agree with its output under (units,
    ///      ppm), every pair of groups compared once.
    function _near(bytes32[] memory digests, uint16[] memory same, uint32 units, uint32 ppm)
        private
        view
        returns (uint16[] memory near)
    {
        uint256 k = digests.length;
        near = new uint16[](k);
        bytes[] memory outputs = new bytes[](k);
        for (uint256 i = 0; i < k; ++i) {
            if (same[i] == 0) continue;
            near[i] = same[i];
            outputs[i] = _loadOutput(digests[i]);
        }
        for (uint256 i = 0; i < k; ++i) {
            if (same[i] == 0) continue;
            for (uint256 j = i + 1; j < k; ++j) {
                if (same[j] == 0 || !_within(outputs[i], outputs[j], units, ppm)) continue;
                near[i] |= same[j];
                near[j] |= same[i];
            }
        }
    }

    /// @dev Revealed members grouped by digest: `same[i]` is the mask of members that revealed member i's
    ///      digest when i is the first of them, zero otherwise.
    function _groups(uint256 requestId, uint256 k, uint16 revealed)
        private
        view
        returns (bytes32[] memory digests, uint16[] memory same)
    {
        digests = new bytes32[](k);
        same = new uint16[](k);
        mapping(uint256 => bytes32) storage hashes = _memberHashes[requestId];
        for (uint256 i = 0; i < k; ++i) {
            if (revealed & (1 << i) == 0) continue;
            digests[i] = hashes[i];
            uint256 first = i;
            for (uint256 j = 0; j < i; ++j) {
                if (same[j] != 0 && digests[j] == digests[i]) {
                    first = j;
                    break;
                }
            }
            same[first] |= uint16(1 << i);
        }
    }

    /// @dev Never committed: silence. Committed, never revealed: withheld. Revealed another output than
    ///      an accepted one: dissent. Disagreeing without a quorum is no fault: nobody knows who was right.
    /// @dev The revealed members a settlement with `agreeing` members behind `best` may slash as dissent:
    ///      none without a quorum or when the accepted answer is INPUT_UNAVAILABLE, and never one who
    ///      answered INPUT_UNAVAILABLE (who gets an external input is the requester's choice, not the
    ///      member's; such a member is not paid either).
    function _judged(uint256 requestId, uint256 k, uint16 revealed, bytes32 best, uint256 agreeing)
        private
        view
        returns (uint16 judged)
    {
        if (agreeing == 0 || best == TensorCodec.INPUT_UNAVAILABLE_DIGEST) return 0;
        mapping(uint256 => bytes32) storage hashes = _memberHashes[requestId];
        for (uint256 i = 0; i < k; ++i) {
            if (revealed & (1 << i) != 0 && hashes[i] != TensorCodec.INPUT_UNAVAILABLE_DIGEST) {
                judged |= uint16(1 << i);
            }
        }
    }

    function _penalties(
        IInferenceHub.Outcome memory outcome,
        Round storage r,
        address[] memory committee,
        uint16 revealed,
        uint16 agreeMask,
        uint16 judged
    ) private view {
        uint16 committed = r.committedMask;
        IInferenceHub.Fault[] memory faults = new IInferenceHub.Fault[](committee.length);
        uint256 n;
        for (uint256 i = 0; i < committee.length; ++i) {
            uint16 bit = uint16(1 << i);
            if (agreeMask & bit != 0) continue;
            if (committed & bit == 0) faults[i] = IInferenceHub.Fault.Silent;
            else if (revealed & bit == 0) faults[i] = IInferenceHub.Fault.Withheld;
            else if (judged & bit != 0) faults[i] = IInferenceHub.Fault.Dissent;
            else continue;
            ++n;
        }
        outcome.penalized = new address[](n);
        outcome.faults = new IInferenceHub.Fault[](n);
        outcome.bps = new uint16[](n);
        n = 0;
        for (uint256 i = 0; i < committee.length; ++i) {
            if (faults[i] == IInferenceHub.Fault.None) continue;
            outcome.penalized[n] = committee[i];
            outcome.faults[n] = faults[i];
            outcome.bps[n++] = faults[i] == IInferenceHub.Fault.Silent ? r.slashBpsSilence : r.slashBpsDissent;
        }
    }
}
