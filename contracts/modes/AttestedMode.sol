// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IInferenceHub} from "../interfaces/IInferenceHub.sol";
import {IOperatorStaking} from "../interfaces/IOperatorStaking.sol";
import {IVerificationMode} from "../interfaces/IVerificationMode.sol";
import {TensorCodec} from "../libraries/TensorCodec.sol";
import {ModeBase} from "./ModeBase.sol";

/// @title AttestedMode
/// @notice Agreement by EIP-712 signatures in one transaction. Committee members sign
///         `ResultAttestation(requestId, outputDigest)` off-chain and exchange signatures; whoever holds
///         a strict majority (k/2+1) on one digest submits them with the output. Signatures on another
///         digest prove dissent and are slashed, in the settlement or shown until the late window
///         closes; two signatures of one member on different digests for one request are
///         equivocation, slashable by anyone who shows them, with a reward. A member the submitter
///         left out loses nothing: its fee is held until the late window closes and paid when its
///         signature on the accepted digest is shown. Without a quorum by the deadline the request
///         expires with a full refund and nobody is penalized. For a version with a tolerance, a
///         signature on another digest counts as agreement when its output is shown and is within the
///         tolerance of the accepted output, and as dissent only when shown and outside it.
contract AttestedMode is ModeBase, EIP712 {
    /// @notice This mode's bit in the hub and in a version's `modes`.
    uint8 public constant MODE = 0x08;
    /// @notice EIP-712 type of what members sign (the type string is longer than 32 bytes by necessity).
    // solhint-disable-next-line gas-small-strings
    bytes32 public constant ATTESTATION_TYPEHASH = keccak256("ResultAttestation(uint256 requestId,bytes32 outputDigest)");
    /// @notice Fewest blocks a late window may have.
    uint16 public constant MIN_LATE_WINDOW = 8;
    /// @notice Largest reporter's share of an equivocator's slash, in percent.
    uint8 public constant MAX_REWARD_PCT = 50;

    /// @notice Copied into each round when it opens (blocks; basis points).
    struct Params {
        /// @dev blocks after the seed block in which the round can settle; below 256 so the committee
        ///      can always be drawn in the settlement
        uint32 window;
        /// @dev blocks after the deadline in which a left-out member's signature still earns its fee and
        ///      a left-out dissent can still be proven; at least MIN_LATE_WINDOW
        uint16 lateWindow;
        uint16 slashBpsDissent;
        /// @dev the reporter's share of an equivocator's slashed stake, in percent (at most 50)
        uint8 equivocationRewardPct;
    }

    /// @dev One slot per request.
    struct Round {
        uint40 seedBlock;
        uint40 deadline;
        /// @dev zero while the round is open
        uint40 settledBlock;
        uint8 k;
        uint16 lateWindow;
        /// @dev members whose signature on the accepted digest counted (paid)
        uint16 agreeMask;
        /// @dev members slashed in this round (dissent in the settlement, or equivocation)
        uint16 penalizedMask;
        uint16 slashBpsDissent;
        uint32 maxOutputBytes;
        uint8 errorCode;
        bool digestOnly;
        bool drawn;
        uint8 equivocationRewardPct;
    }

    /// @notice One member's signature, on the digest it signed.
    struct Signed {
        bytes32 digest;
        bytes signature;
    }

    Params private _params;
    mapping(uint256 requestId => Round) private _rounds;
    /// @dev The accepted output's digest, once settled with a quorum.
    mapping(uint256 requestId => bytes32) private _accepted;
    /// @dev Committees as pool slots, eight 32-bit slots a word (one word up to k = 8): a member is
    ///      looked up again only after settlement, and a word costs a third of three addresses.
    mapping(uint256 requestId => mapping(uint256 word => uint256)) private _slotWords;
    /// @dev Tolerance versions: digests of the other outputs whose members agreed in the settlement. A dissent
    ///      shown later must be outside the rule of the accepted output and of each of them. Late attestations
    ///      add nothing: an honest member's witness (an honest member of the quorum) is in the settlement, and
    ///      a list that grew later would let colluders make a report cost a block, or front-run it.
    mapping(uint256 requestId => bytes32[]) private _agreedOthers;

    /// @notice A round settled on a quorum of signatures.
    /// @param requestId the request
    /// @param digest the accepted output's digest
    /// @param agreeMask members whose signatures on it counted
    /// @param dissentMask members whose signatures on another digest were included (slashed)
    event Attested(uint256 indexed requestId, bytes32 digest, uint16 agreeMask, uint16 dissentMask);
    /// @notice A member the settlement left out showed its signature on the accepted digest in time.
    /// @param requestId the request
    /// @param member the member, paid its held fee
    event LateAttestation(uint256 indexed requestId, address indexed member);
    /// @notice A member was proven to have signed two digests for one request.
    /// @param requestId the request
    /// @param member the equivocating member
    /// @param reporter who showed both signatures
    event EquivocationProven(uint256 indexed requestId, address indexed member, address indexed reporter);
    /// @notice A left-out signature on another digest was shown after settlement and slashed.
    /// @param requestId the request
    /// @param member the dissenting member
    /// @param digest what it signed
    event DissentProven(uint256 indexed requestId, address indexed member, bytes32 digest);
    /// @notice Parameters changed.
    /// @param params the new parameters
    event ParamsUpdated(Params params);

    /// @notice The round's deadline has passed: it can only expire now.
    error DeadlinePassed(uint256 requestId, uint256 deadline);
    /// @notice The round's deadline has not passed yet.
    error DeadlineNotPassed(uint256 requestId, uint256 deadline);
    /// @notice Fewer than k/2+1 members signed the output.
    error NoQuorum(uint256 requestId, uint256 signatures, uint256 needed);
    /// @notice One member's signature appears twice in a settlement.
    error DuplicateSigner(uint256 requestId, address signer);
    /// @notice The signature does not recover to a committee member (or is malformed).
    error BadSignature(uint256 requestId);
    /// @notice The two signatures are of one digest, or of different signers.
    error NotEquivocation(uint256 requestId);
    /// @notice The signature is on the accepted digest: no dissent.
    error NotDissent(uint256 requestId);
    /// @notice The member was penalized in this round already.
    error AlreadyPenalized(uint256 requestId, address member);
    /// @notice The round has no accepted output (not settled, or expired).
    error NothingAccepted(uint256 requestId);
    /// @notice The member's agreement is counted already, or it was penalized.
    error AlreadyCounted(uint256 requestId, address member);
    /// @notice The late window is over.
    error LateWindowClosed(uint256 requestId, uint256 until);
    /// @notice The late window is still open.
    error LateWindowOpen(uint256 requestId, uint256 until);
    /// @notice The version has a tolerance: a signature on another digest is judged only with its output.
    error OutputNeeded(uint256 requestId);
    /// @notice The output shown is not the one the signature is on.
    error OutputMismatch(uint256 requestId, bytes32 signed, bytes32 shown);
    /// @notice The output shown is not within the version's tolerance of the accepted one.
    error NotWithinTolerance(uint256 requestId);
    /// @notice A dissent in a tolerance version is judged against every agreeing output: show them all, in
    ///         the order `agreedOutputs` lists them.
    error AgreedOutputsNeeded(uint256 requestId, uint256 count);

    /// @param hub_ the core; it must register this contract for MODE
    /// @param staking_ operator staking (the core's)
    /// @param params_ initial parameters
    /// @param admin holder of DEFAULT_ADMIN_ROLE
    constructor(IInferenceHub hub_, IOperatorStaking staking_, Params memory params_, address admin)
        ModeBase(hub_, staking_, admin)
        EIP712("verinfer AttestedMode", "1")
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
        deadline = o.seedBlock + uint40(p.window);
        _rounds[requestId] = Round({
            seedBlock: o.seedBlock,
            deadline: deadline,
            settledBlock: 0,
            k: o.k,
            lateWindow: p.lateWindow,
            agreeMask: 0,
            penalizedMask: 0,
            slashBpsDissent: p.slashBpsDissent,
            maxOutputBytes: o.maxOutputBytes,
            errorCode: 0,
            digestOnly: o.digestOnly,
            drawn: false,
            equivocationRewardPct: p.equivocationRewardPct
        });
    }

    // ------------------------------------------------------------------ settlement

    /// @notice Settles a request on a quorum of signatures over keccak256(output). Include every
    ///         signature held: those on another digest are slashed as dissent, members left out keep
    ///         their fee for the late window.
    /// @param requestId the request
    /// @param output the output the quorum signed
    /// @param signatures committee members' signatures, each with the digest it signed
    function settle(uint256 requestId, bytes calldata output, Signed[] calldata signatures) external nonReentrant {
        _settle(requestId, _open(requestId), output, signatures, new bytes[](0));
    }

    /// @notice Settles like `settle`, showing the outputs of signatures on other digests: for a version with
    ///         a tolerance, a member whose output is within it of `output` counts as agreeing (paid), one
    ///         outside it is slashed as dissent; a signature on another digest whose output is not shown is
    ///         left out (its fee held for the late window). An exact version ignores `others`.
    /// @param requestId the request
    /// @param output the output settled with (the submitter's choice; it needs k/2+1 agreeing members)
    /// @param signatures committee members' signatures, each with the digest it signed
    /// @param others outputs of the other digests signed, in any order
    function settleWithOutputs(
        uint256 requestId,
        bytes calldata output,
        Signed[] calldata signatures,
        bytes[] calldata others
    ) external nonReentrant {
        _settle(requestId, _open(requestId), output, signatures, others);
    }

    /// @notice Settles many requests in one transaction. A request someone else settled first is skipped
    ///         (a race costs the loser nothing but the gas of the check); any other failure reverts all.
    /// @param requestIds the requests
    /// @param outputs one output per request
    /// @param signatures one signature list per request
    /// @return settled how many requests this call settled
    function settleMany(uint256[] calldata requestIds, bytes[] calldata outputs, Signed[][] calldata signatures)
        external
        nonReentrant
        returns (uint256 settled)
    {
        if (requestIds.length == 0 || requestIds.length != outputs.length || requestIds.length != signatures.length) {
            revert BatchLengthMismatch();
        }
        for (uint256 i = 0; i < requestIds.length; ++i) {
            Round storage r = _known(requestIds[i]);
            if (r.settledBlock != 0) continue;
            _settle(requestIds[i], r, outputs[i], signatures[i], new bytes[](0));
            ++settled;
        }
    }

    /// @notice Ends a round that reached no quorum by its deadline: a full refund, nobody penalized
    ///         (who stayed silent cannot be told from who was left out). Anyone may call.
    /// @param requestId the request
    function expire(uint256 requestId) external nonReentrant {
        Round storage r = _open(requestId);
        if (block.number <= r.deadline) revert DeadlineNotPassed(requestId, r.deadline);
        // The committee is kept so that equivocation stays provable after the seed is gone.
        if (!r.drawn && _drawable(requestId, r.k, r.seedBlock)) {
            r.drawn = true;
            _draw(requestId, r.k, r.seedBlock);
        }
        r.settledBlock = uint40(block.number);
        IInferenceHub.Outcome memory outcome;
        outcome.status = IInferenceHub.Status.Expired;
        hub.settle(requestId, outcome, "");
    }

    /// @notice Pays a member the settlement left out: its signature on the accepted digest, shown
    ///         before the late window closes. Anyone may call; the fee goes to the member.
    /// @param requestId the request
    /// @param signature the member's signature on (requestId, accepted digest)
    function attestLate(uint256 requestId, bytes calldata signature) external nonReentrant {
        _attestLate(requestId, _accepted[requestId], signature);
    }

    /// @notice Pays a left-out member whose signature is on another output within the version's tolerance
    ///         of the accepted one, shown with that output before the late window closes. Anyone may call.
    /// @param requestId the request
    /// @param signed the member's signature, with the digest it signed
    /// @param output the output that digest is of
    function attestLateWithOutput(uint256 requestId, Signed calldata signed, bytes calldata output)
        external
        nonReentrant
    {
        bytes32 accepted = _accepted[requestId];
        if (signed.digest != accepted) {
            _checkShown(requestId, signed.digest, output);
            if (accepted == bytes32(0)) revert NothingAccepted(requestId);
            if (!_withinRule(requestId, _loadOutput(accepted), output)) revert NotWithinTolerance(requestId);
        }
        _attestLate(requestId, signed.digest, signed.signature);
    }

    function _attestLate(uint256 requestId, bytes32 digest, bytes calldata signature) private {
        Round storage r = _known(requestId);
        if (digest == bytes32(0)) revert NothingAccepted(requestId);
        uint256 until = uint256(r.deadline) + r.lateWindow;
        if (block.number > until) revert LateWindowClosed(requestId, until);
        (address member, uint16 bit) = _signer(_committee(requestId, r.k), requestId, digest, signature);
        if ((r.agreeMask | r.penalizedMask) & bit != 0) revert AlreadyCounted(requestId, member);
        r.agreeMask |= bit;
        emit LateAttestation(requestId, member);
        hub.payHeld(requestId, member);
    }

    /// @notice Refunds the fees held for members who never showed their agreement, once the late window
    ///         has closed. Anyone may call; the tokens go to the requester.
    /// @param requestId the request
    function releaseHeld(uint256 requestId) external nonReentrant {
        Round storage r = _known(requestId);
        uint256 until = uint256(r.deadline) + r.lateWindow;
        if (block.number <= until) revert LateWindowOpen(requestId, until);
        hub.releaseHeld(requestId);
    }

    /// @notice Slashes, at the round's dissent rate, a member whose signature on another digest than the
    ///         accepted one the settlement left out (a submitter cannot spare a dissenter, itself
    ///         included, by omitting its signature). Anyone may call until the late window closes; the
    ///         slashed stake goes to the treasury, never to the caller.
    /// @param requestId the request
    /// @param dissent the member's signature, with the digest it signed
    function reportDissent(uint256 requestId, Signed calldata dissent) external nonReentrant {
        (uint32 units, uint32 ppm) = hub.toleranceOf(requestId);
        if ((units | ppm) != 0) revert OutputNeeded(requestId);
        _reportDissent(requestId, dissent);
    }

    /// @notice `reportDissent` with the signature's output shown, for any version: for one with a tolerance
    ///         it is slashed only if the output is outside the tolerance of the accepted output and of every
    ///         other agreeing output (`agreedOutputs`; bytes that are not canonical tensors are outside).
    /// @param requestId the request
    /// @param dissent the member's signature, with the digest it signed
    /// @param output the output that digest is of
    /// @param agreed the outputs of `agreedOutputs(requestId)`, in that order (empty for an exact version)
    function reportDissentWithOutput(
        uint256 requestId,
        Signed calldata dissent,
        bytes calldata output,
        bytes[] calldata agreed
    ) external nonReentrant {
        _checkShown(requestId, dissent.digest, output);
        bytes32 accepted = _accepted[requestId];
        (uint32 units, uint32 ppm) = hub.toleranceOf(requestId);
        if (accepted != bytes32(0) && accepted != dissent.digest && (units | ppm) != 0) {
            if (_within(_loadOutput(accepted), output, units, ppm)) revert NotDissent(requestId);
            bytes32[] storage digests = _agreedOthers[requestId];
            if (agreed.length != digests.length) revert AgreedOutputsNeeded(requestId, digests.length);
            for (uint256 i = 0; i < agreed.length; ++i) {
                _checkShown(requestId, digests[i], agreed[i]);
                if (_within(agreed[i], output, units, ppm)) revert NotDissent(requestId);
            }
        }
        _reportDissent(requestId, dissent);
    }

    /// @notice Digests of the outputs other than the accepted one whose members agreed within the version's
    ///         tolerance in the settlement, in the order `reportDissentWithOutput` wants them.
    /// @param requestId the request
    /// @return digests the agreeing outputs' digests
    function agreedOutputs(uint256 requestId) external view returns (bytes32[] memory) {
        return _agreedOthers[requestId];
    }

    function _reportDissent(uint256 requestId, Signed calldata dissent) private {
        Round storage r = _known(requestId);
        bytes32 accepted = _accepted[requestId];
        if (accepted == bytes32(0)) revert NothingAccepted(requestId);
        if (!_slashableDissent(accepted, dissent.digest)) revert NotDissent(requestId);
        uint256 until = uint256(r.deadline) + r.lateWindow;
        if (block.number > until) revert LateWindowClosed(requestId, until);
        (address member, uint16 bit) =
            _signer(_committee(requestId, r.k), requestId, dissent.digest, dissent.signature);
        if (r.penalizedMask & bit != 0) revert AlreadyPenalized(requestId, member);
        r.penalizedMask |= bit;
        emit DissentProven(requestId, member, dissent.digest);
        hub.penalize(requestId, member, IInferenceHub.Fault.Dissent, r.slashBpsDissent, address(0), 0);
    }

    /// @notice Slashes a member who signed two different digests for one request; part of the stake
    ///         goes to the caller. The rate is raised so that what the member loses after the reward is
    ///         still the dissent rate: reporting itself from another address saves an equivocator
    ///         nothing. Works whenever the committee is known (drawn by a settlement, an expiry, a
    ///         report within 256 blocks of the seed) and the member's stake is bonded.
    /// @param requestId the request
    /// @param a one signature with its digest
    /// @param b another signature of the same member on another digest
    function reportEquivocation(uint256 requestId, Signed calldata a, Signed calldata b) external nonReentrant {
        Round storage r = _known(requestId);
        if (a.digest == b.digest) revert NotEquivocation(requestId);
        address[] memory committee = _committeeDrawing(requestId, r);
        (address member, uint16 bit) = _signer(committee, requestId, a.digest, a.signature);
        (address other,) = _signer(committee, requestId, b.digest, b.signature);
        if (member != other) revert NotEquivocation(requestId);
        if (r.penalizedMask & bit != 0) revert AlreadyPenalized(requestId, member);
        r.penalizedMask |= bit;
        emit EquivocationProven(requestId, member, msg.sender);
        uint256 pct = r.equivocationRewardPct;
        // At most BPS: setParams keeps slashBpsDissent * 100 <= BPS * (100 - pct).
        uint256 bps = (uint256(r.slashBpsDissent) * 100) / (100 - pct);
        hub.penalize(
            requestId,
            member,
            IInferenceHub.Fault.Equivocation,
            uint16(bps),
            msg.sender,
            uint16(pct * 100)
        );
    }

    // ------------------------------------------------------------------ admin

    /// @notice Replaces the parameters; rounds already open keep theirs.
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
    function getRound(uint256 requestId) external view returns (Round memory) {
        return _known(requestId);
    }

    /// @notice The hash a member signs for (requestId, outputDigest): EIP-712 over this contract's domain.
    /// @param requestId the request
    /// @param outputDigest keccak256 of the output
    /// @return the typed-data hash
    function attestationHash(uint256 requestId, bytes32 outputDigest) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ATTESTATION_TYPEHASH, requestId, outputDigest)));
    }

    /// @inheritdoc IVerificationMode
    function deadlineOf(uint256 requestId) external view returns (uint40) {
        return _rounds[requestId].deadline;
    }

    /// @inheritdoc IVerificationMode
    function resultOf(uint256 requestId)
        external
        view
        returns (bytes32 digest, bytes memory output, address[] memory agreeing, uint40 settledBlock, uint8 errorCode)
    {
        Round storage r = _known(requestId);
        settledBlock = r.settledBlock;
        digest = _accepted[requestId];
        if (digest == bytes32(0)) return (digest, output, agreeing, settledBlock, 0);
        agreeing = _membersIn(_committee(requestId, r.k), r.agreeMask);
        if (!r.digestOnly) output = _loadOutput(digest);
        errorCode = r.errorCode;
    }

    // ------------------------------------------------------------------ internals

    function _setParams(Params memory p) private {
        if (p.window == 0 || p.window >= SEED_HORIZON || p.lateWindow < MIN_LATE_WINDOW) revert InvalidParams();
        if (p.slashBpsDissent > BPS || p.equivocationRewardPct > MAX_REWARD_PCT) revert InvalidParams();
        // The equivocation rate (raised so a self-report saves nothing) must not hit 100 %: capped, a
        // self-reporting equivocator would lose less than the dissent rate.
        if (uint256(p.slashBpsDissent) * 100 > BPS * (100 - uint256(p.equivocationRewardPct))) revert InvalidParams();
        _checkUnbondingCovers(uint256(p.window) + p.lateWindow);
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

    /// @dev The committee member who signed (requestId, digest), and its bit; reverts BadSignature for a
    ///      malformed or malleable signature, NotCommitteeMember for anyone else.
    function _signer(address[] memory committee, uint256 requestId, bytes32 digest, bytes calldata signature)
        private
        view
        returns (address member, uint16 bit)
    {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(attestationHash(requestId, digest), signature);
        if (err != ECDSA.RecoverError.NoError) revert BadSignature(requestId);
        bit = uint16(1 << _indexIn(committee, requestId, signer));
        member = signer;
    }

    /// @dev The round's committee, drawn now if nobody has yet.
    function _committeeDrawing(uint256 requestId, Round storage r) private returns (address[] memory) {
        if (r.drawn) return _committee(requestId, r.k);
        r.drawn = true;
        return _draw(requestId, r.k, r.seedBlock);
    }

    function _keepCommittee(uint256 requestId, address[] memory, uint256[] memory slots) internal override {
        uint256 word = 0;
        for (uint256 i = 0; i < slots.length; ++i) {
            word |= slots[i] << (32 * (i % 8)); // slots are 32-bit (StakeTree)
            if (i % 8 == 7 || i == slots.length - 1) {
                _slotWords[requestId][i / 8] = word;
                word = 0;
            }
        }
    }

    function _committee(uint256 requestId, uint256 k) internal view override returns (address[] memory) {
        uint256[] memory slots = new uint256[](k);
        uint256 word = 0;
        for (uint256 i = 0; i < k; ++i) {
            if (i % 8 == 0) word = _slotWords[requestId][i / 8];
            slots[i] = (word >> (32 * (i % 8))) & type(uint32).max;
        }
        return staking.membersAt(hub.poolOf(requestId), slots);
    }

    function _settle(
        uint256 requestId,
        Round storage r,
        bytes calldata output,
        Signed[] calldata signatures,
        bytes[] memory others
    ) private {
        if (block.number > r.deadline) revert DeadlinePassed(requestId, r.deadline);
        if (output.length > r.maxOutputBytes) revert OutputTooLarge(requestId, output.length, r.maxOutputBytes);
        uint8 k = r.k;
        address[] memory committee = _committeeDrawing(requestId, r);
        bytes32 digest = keccak256(output);
        uint16 penalized = r.penalizedMask;
        (uint16 agree, uint16 dissent, Judge memory judge) =
            _sorted(committee, requestId, output, penalized, signatures, others);
        uint256 agreeing = _popcount(agree);
        if (agreeing < uint256(k) / 2 + 1) revert NoQuorum(requestId, agreeing, uint256(k) / 2 + 1);

        IInferenceHub.Outcome memory outcome;
        outcome.errorCode = TensorCodec.errorCodeOf(output);
        outcome.status = outcome.errorCode == 0 ? IInferenceHub.Status.Finalized : IInferenceHub.Status.Failed;
        outcome.digest = digest;
        r.settledBlock = uint40(block.number);
        r.agreeMask = agree;
        r.penalizedMask = penalized | dissent;
        r.errorCode = outcome.errorCode;
        _accepted[requestId] = digest;
        if (!r.digestOnly) _storeOutput(digest, output);
        for (uint256 j = 0; j < judge.shown.length && j < 256; ++j) {
            if (judge.agreed & (1 << j) != 0) _agreedOthers[requestId].push(judge.shown[j]);
        }
        emit Attested(requestId, digest, agree, dissent);

        // A quorum that could not get the input did no work: nobody is paid or held for (fees go back).
        bool unavailable = digest == TensorCodec.INPUT_UNAVAILABLE_DIGEST;
        outcome.paid = _membersIn(committee, unavailable ? 0 : agree);
        outcome.penalized = _membersIn(committee, dissent);
        uint256 n = outcome.penalized.length;
        outcome.faults = new IInferenceHub.Fault[](n);
        outcome.bps = new uint16[](n);
        for (uint256 i = 0; i < n; ++i) {
            outcome.faults[i] = IInferenceHub.Fault.Dissent;
            outcome.bps[i] = r.slashBpsDissent;
        }
        // Everyone not paid, not slashed now and not slashed before may still show its agreement.
        outcome.held = unavailable ? 0 : uint8(k - agreeing - _popcount(penalized | dissent));
        hub.settle(requestId, outcome, output);
    }

    /// @dev The members whose signatures agree with `output` and those whose signatures are dissent to
    ///      slash; a member already penalized counts for nothing, a member twice reverts. A signature on
    ///      another digest is dissent for an exact version; for a tolerance version it agrees or dissents by
    ///      its output in `others`, and counts for nothing when that output is not shown.
    function _sorted(
        address[] memory committee,
        uint256 requestId,
        bytes calldata output,
        uint16 penalized,
        Signed[] calldata signatures,
        bytes[] memory others
    ) private view returns (uint16 agree, uint16 dissent, Judge memory judge) {
        bytes32 digest = keccak256(output);
        // Read on the first signature on another digest: an agreeing settlement never asks the hub.
        judge = Judge(false, false, 0, 0, 0, 0, new bytes32[](0));
        uint256[] memory outside = new uint256[](0); // tolerance versions: indices of shown outputs outside it
        uint16 outsideMask = 0;
        uint16 seen;
        for (uint256 i = 0; i < signatures.length; ++i) {
            (address signer, uint16 bit) = _signer(committee, requestId, signatures[i].digest, signatures[i].signature);
            if (seen & bit != 0) revert DuplicateSigner(requestId, signer);
            seen |= bit;
            if (penalized & bit != 0) continue; // a proven equivocator's word counts for nothing
            bytes32 signed = signatures[i].digest;
            if (signed == digest) {
                agree |= bit;
                continue;
            }
            if (!judge.read) judge = _judge(requestId, others);
            if (!judge.tolerant) {
                if (_slashableDissent(digest, signed)) dissent |= bit;
                continue;
            }
            (bool shown, bool within, uint256 at) = _verdict(judge, output, signed, others);
            if (!shown) continue; // left out: its fee is held for the late window
            if (within) {
                agree |= bit;
            } else if (_slashableDissent(digest, signed)) {
                if (outside.length == 0) outside = new uint256[](committee.length);
                outside[_bitIndex(bit)] = at;
                outsideMask |= bit;
            }
        }
        if (outsideMask != 0) dissent = _spare(judge, outside, outsideMask, others);
    }

    /// @dev Of the members whose shown outputs are outside the rule of the settled output, those outside it
    ///      of every agreeing output too: the others are spared (neither paid nor slashed). The agreeing
    ///      members outnumber any minority, so they include an honest one, and honest outputs are within the
    ///      rule of each other: however a minority submitter picks the output, no honest member is slashed.
    function _spare(Judge memory judge, uint256[] memory outside, uint16 outsideMask, bytes[] memory others)
        private
        view
        returns (uint16 dissent)
    {
        for (uint256 m = 0; m < outside.length; ++m) {
            if (outsideMask & (1 << m) == 0) continue;
            bool spared = false;
            for (uint256 j = 0; j < others.length && j < 256 && !spared; ++j) {
                if (judge.agreed & (1 << j) != 0) spared = _within(others[outside[m]], others[j], judge.units, judge.ppm);
            }
            if (!spared) dissent |= uint16(1 << m);
        }
    }

    function _bitIndex(uint16 bit) private pure returns (uint256 i) {
        while (bit > 1) {
            bit >>= 1;
            ++i;
        }
    }

    /// @dev What judging signatures on other digests needs: the version's rule, the digests of the outputs
    ///      shown, and which of them were compared already (and their answers).
    struct Judge {
        bool read;
        bool tolerant;
        uint32 units;
        uint32 ppm;
        uint256 compared;
        uint256 agreed;
        bytes32[] shown;
    }

    function _judge(uint256 requestId, bytes[] memory others) private view returns (Judge memory judge) {
        (judge.units, judge.ppm) = hub.toleranceOf(requestId);
        judge.read = true;
        judge.tolerant = (judge.units | judge.ppm) != 0;
        if (!judge.tolerant) return judge;
        judge.shown = new bytes32[](others.length);
        for (uint256 i = 0; i < others.length; ++i) {
            judge.shown[i] = keccak256(others[i]);
        }
    }

    /// @dev Whether an output of `signed` is among those shown, and whether it is within the rule of
    ///      `output`; each shown output is compared at most once.
    function _verdict(Judge memory judge, bytes calldata output, bytes32 signed, bytes[] memory others)
        private
        view
        returns (bool shown, bool within, uint256 at)
    {
        for (uint256 j = 0; j < judge.shown.length && j < 256; ++j) {
            if (judge.shown[j] != signed) continue;
            uint256 bit = 1 << j;
            if (judge.compared & bit == 0) {
                judge.compared |= bit;
                if (_within(output, others[j], judge.units, judge.ppm)) judge.agreed |= bit;
            }
            return (true, judge.agreed & bit != 0, j);
        }
    }

    /// @dev Whether `shown` is within the request's rule of `accepted` (false for an exact version).
    function _withinRule(uint256 requestId, bytes memory accepted, bytes calldata shown) private view returns (bool) {
        (uint32 units, uint32 ppm) = hub.toleranceOf(requestId);
        return (units | ppm) != 0 && _within(accepted, shown, units, ppm);
    }

    function _checkShown(uint256 requestId, bytes32 signed, bytes calldata output) private pure {
        bytes32 shown = keccak256(output);
        if (shown != signed) revert OutputMismatch(requestId, signed, shown);
    }

    /// @dev Whether a signature on `signed` against the accepted `accepted` is dissent to slash: never
    ///      when either is INPUT_UNAVAILABLE (who gets an external input is the requester's choice; such
    ///      a member is not paid either: its fee is held, then refunded).
    function _slashableDissent(bytes32 accepted, bytes32 signed) private pure returns (bool) {
        return signed != accepted && signed != TensorCodec.INPUT_UNAVAILABLE_DIGEST
            && accepted != TensorCodec.INPUT_UNAVAILABLE_DIGEST;
    }
}
