// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IDrawExclusion} from "../interfaces/IDrawExclusion.sol";
import {IInferenceHub} from "../interfaces/IInferenceHub.sol";
import {IOperatorStaking} from "../interfaces/IOperatorStaking.sol";
import {IVerificationMode} from "../interfaces/IVerificationMode.sol";
import {TensorCodec} from "../libraries/TensorCodec.sol";
import {ModeBase} from "./ModeBase.sol";

/// @title OptimisticMode
/// @notice One drawn operator (the poster) posts the output with a bond in tokens; the output stands
///         unless someone challenges it within the challenge window. A challenger locks a bond and pays
///         for an escalation: a consensus request for the same model version and input, made by this
///         contract through the core, whose accepted output decides. A poster the escalation overturns
///         loses its bond to the challenger and the treasury and is slashed (part to the challenger); a
///         challenger the escalation contradicts loses its bond to the poster and the treasury. An
///         escalation without an accepted output returns both bonds and ends the request Disputed. A
///         poster who never posts is slashed for silence and the request expires with a full refund.
contract OptimisticMode is ModeBase {
    using SafeERC20 for IERC20;

    /// @notice This mode's bit in the hub and in a version's `modes`.
    uint8 public constant MODE = 0x04;
    /// @notice The mode a challenge escalates to (a version allowing this mode must allow it too).
    uint8 public constant ESCALATION_MODE = 0x01;

    /// @notice Windows in blocks, bonds in tokens, rates in basis points. Kept by id: a round refers to
    ///         the parameters in force when it opened.
    // solhint-disable-next-line gas-struct-packing
    struct Params {
        /// @dev blocks after the seed block in which the poster posts; below 256 so the seed is readable
        uint32 postWindow;
        /// @dev blocks after the post in which anyone may challenge
        uint32 challengeWindow;
        /// @dev how long an escalation round lasts at most (consensus mode's windows, counted from the
        ///      challenge): the unbonding check counts it so that a wrong poster's stake is still bonded
        ///      when its escalation ends; a longer escalation still decides, its slash finds what is bonded
        uint32 escalationBlocks;
        /// @dev committee size of the escalation: odd, at least 3
        uint8 escalationK;
        /// @dev of the poster's stake, slashed when the escalation accepts another output
        uint16 slashBpsWrong;
        /// @dev of the poster's stake, slashed when it never posts
        uint16 slashBpsSilence;
        /// @dev share of a wrong poster's slash paid to the challenger (the rest to the treasury)
        uint16 rewardBps;
        /// @dev share of the losing side's bond paid to the winner (the rest to the treasury)
        uint16 winnerShareBps;
        /// @dev tokens the poster locks with a post
        uint96 postBond;
        /// @dev tokens a challenger locks, besides paying the escalation's fee
        uint96 challengeBond;
    }

    /// @notice Where a round is.
    enum Phase {
        None,
        /// waiting for the post
        Open,
        /// posted; challengeable until challengeDeadline
        Posted,
        /// challenged; waiting for the escalation to end
        Challenged,
        /// ended with the posted output (unchallenged, or the escalation agreed)
        Upheld,
        /// ended with the escalation's output; the poster was wrong
        Overturned,
        /// ended Disputed: the escalation accepted no output
        Undecided,
        /// ended Expired: nothing was posted
        Unposted
    }

    /// @dev One slot per request (224 bits; solhint's packing heuristic does not count enum and bool widths).
    // solhint-disable-next-line gas-struct-packing
    struct Round {
        uint40 seedBlock;
        /// @dev zero until posted
        uint40 challengeDeadline;
        /// @dev zero while the round is open
        uint40 settledBlock;
        uint16 paramsId;
        uint32 maxOutputBytes;
        Phase phase;
        bool digestOnly;
        uint8 errorCode;
        /// @dev the poster's slot in the request's pool, plus one (zero: not drawn)
        uint32 posterSlot;
    }

    /// @dev A challenge: who, and the escalation request it paid for.
    struct Challenge {
        address challenger;
        uint64 escalationId;
    }

    /// @notice A round as off-chain code reads it.
    // solhint-disable-next-line gas-struct-packing
    struct RoundView {
        Phase phase;
        /// @dev the poster is drawn (at its post, or at an expiry that penalized it)
        bool drawn;
        uint32 maxOutputBytes;
        uint40 seedBlock;
        uint40 postDeadline;
        uint40 challengeDeadline;
        uint40 settledBlock;
        address poster;
        bytes32 postedDigest;
        address challenger;
        uint256 escalationId;
        Params params;
    }

    IERC20 private immutable _token;
    Params[] private _paramHistory;
    mapping(uint256 requestId => Round) private _rounds;
    /// @dev keccak256 of the request's input: a challenge must escalate exactly that input.
    mapping(uint256 requestId => bytes32) private _inputHashes;
    /// @dev The posted output's digest; the accepted one's once the round ends.
    mapping(uint256 requestId => bytes32) private _digests;
    mapping(uint256 requestId => Challenge) private _challenges;
    /// @notice Tokens this contract owes: bonds of rounds not ended yet, and the fees of escalations not
    ///         resolved (the core refunds a fee to this contract when its escalation accepts nothing, and
    ///         it goes back to the challenger; until then it is counted here so `sweep` cannot take it).
    uint256 public locked;

    /// @notice The poster posted an output; it stands unless challenged by `challengeDeadline`.
    /// @param requestId the request
    /// @param poster the drawn operator
    /// @param digest keccak256 of the output
    /// @param output the output (also for digest-only requests: watchers re-execute against it)
    /// @param challengeDeadline the last block a challenge is accepted in
    event Posted(
        uint256 indexed requestId, address indexed poster, bytes32 digest, bytes output, uint40 challengeDeadline
    );
    /// @notice A post was challenged and escalated to a consensus request.
    /// @param requestId the request
    /// @param challenger who challenged
    /// @param escalationId the consensus request whose accepted output decides
    /// @param fee what the challenger paid for the escalation
    event Challenged(uint256 indexed requestId, address indexed challenger, uint256 escalationId, uint256 fee);
    /// @notice A challenged round ended.
    /// @param requestId the request
    /// @param phase Upheld, Overturned or Undecided
    /// @param digest the accepted output's digest (zero when Undecided)
    event Resolved(uint256 indexed requestId, Phase phase, bytes32 digest);
    /// @notice Parameters changed.
    /// @param paramsId the id rounds opened from now on refer to
    /// @param params the new parameters
    event ParamsUpdated(uint16 paramsId, Params params);

    /// @notice A request in this mode has one poster: k must be 1.
    error OnePoster(uint256 k);
    /// @notice The round is not in the phase this call needs.
    error WrongPhase(uint256 requestId, Phase phase);
    /// @notice The post window is over.
    error PostWindowClosed(uint256 requestId, uint256 postDeadline);
    /// @notice The post window is still open.
    error PostWindowOpen(uint256 requestId, uint256 postDeadline);
    /// @notice The challenge window is over.
    error ChallengeWindowClosed(uint256 requestId, uint256 challengeDeadline);
    /// @notice The challenge window is still open.
    error ChallengeWindowOpen(uint256 requestId, uint256 challengeDeadline);
    /// @notice The input is not the request's.
    error InputMismatch(uint256 requestId);
    /// @notice The output is not the one posted.
    error OutputMismatch(uint256 requestId);
    /// @notice The escalation would cost more than the challenger allows.
    error FeeAboveMax(uint256 fee, uint256 maxFee);
    /// @notice The escalation has not ended yet (nor can it be expired yet).
    error EscalationPending(uint256 escalationId);

    /// @param hub_ the core; it must register this contract for MODE
    /// @param staking_ operator staking (the core's)
    /// @param params_ initial parameters
    /// @param admin holder of DEFAULT_ADMIN_ROLE
    constructor(IInferenceHub hub_, IOperatorStaking staking_, Params memory params_, address admin)
        ModeBase(hub_, staking_, admin)
    {
        _token = hub_.token();
        _setParams(params_);
        // Escalation fees and credits go through the core, which pulls them from here.
        _token.forceApprove(address(hub_), type(uint256).max);
    }

    // ------------------------------------------------------------------ the core

    /// @inheritdoc IVerificationMode
    function open(uint256 requestId, Opening calldata o) external onlyHub returns (uint40 deadline) {
        if (o.k != 1) revert OnePoster(o.k);
        uint16 id = uint16(_paramHistory.length - 1);
        deadline = o.seedBlock + uint40(_paramHistory[id].postWindow);
        _rounds[requestId] = Round({
            seedBlock: o.seedBlock,
            challengeDeadline: 0,
            settledBlock: 0,
            paramsId: id,
            maxOutputBytes: o.maxOutputBytes,
            phase: Phase.Open,
            digestOnly: o.digestOnly,
            errorCode: 0,
            posterSlot: 0
        });
        _inputHashes[requestId] = o.inputHash;
    }

    // ------------------------------------------------------------------ the poster

    /// @notice Posts the output of a request this caller was drawn for, locking the post bond (the
    ///         caller approves it to this contract first). The output stands unless challenged within
    ///         the challenge window.
    /// @param requestId the request
    /// @param output the encoded output, or the canonical error output
    function post(uint256 requestId, bytes calldata output) external nonReentrant {
        Round storage r = _round(requestId);
        if (r.phase != Phase.Open) revert WrongPhase(requestId, r.phase);
        if (output.length > r.maxOutputBytes) revert OutputTooLarge(requestId, output.length, r.maxOutputBytes);
        (uint96 bond, uint40 challengeDeadline) = _startPost(requestId, r);
        bytes32 digest = keccak256(output);
        _digests[requestId] = digest;
        if (!r.digestOnly) _storeOutput(digest, output);
        emit Posted(requestId, msg.sender, digest, output, challengeDeadline);
        if (bond != 0) _token.safeTransferFrom(msg.sender, address(this), bond);
    }

    /// @dev Checks the window and the poster, and moves the round to Posted; the bond and the deadline.
    function _startPost(uint256 requestId, Round storage r) private returns (uint96 bond, uint40 challengeDeadline) {
        Params memory p = _paramHistory[r.paramsId];
        uint256 postDeadline = uint256(r.seedBlock) + p.postWindow;
        if (block.number > postDeadline) revert PostWindowClosed(requestId, postDeadline);
        if (_draw(requestId, 1, r.seedBlock)[0] != msg.sender) revert NotCommitteeMember(requestId, msg.sender);
        challengeDeadline = uint40(block.number + p.challengeWindow);
        r.phase = Phase.Posted;
        r.challengeDeadline = challengeDeadline;
        bond = p.postBond;
        locked += bond;
    }

    /// @notice Ends an unchallenged round once the challenge window is over: the posted output is the
    ///         result, the poster is paid and gets its bond back. Anyone may call. If the core expired
    ///         the request meanwhile, only the bond is returned.
    /// @param requestId the request
    /// @param output the posted output (from `Posted`)
    function finalize(uint256 requestId, bytes calldata output) external nonReentrant {
        Round storage r = _round(requestId);
        if (r.phase != Phase.Posted) revert WrongPhase(requestId, r.phase);
        if (block.number <= r.challengeDeadline) revert ChallengeWindowOpen(requestId, r.challengeDeadline);
        bytes32 digest = _digests[requestId];
        if (keccak256(output) != digest) revert OutputMismatch(requestId);
        address poster = _poster(requestId);
        Params memory p = _paramHistory[r.paramsId];
        _end(r, Phase.Upheld, TensorCodec.errorCodeOf(output));
        locked -= p.postBond;
        _credit(poster, p.postBond);
        _settle(requestId, r, digest, output, poster);
    }

    /// @notice Ends a round nothing was posted for once the post window is over: a full refund, and the
    ///         drawn poster is slashed for silence (when its seed is still readable). Anyone may call.
    /// @param requestId the request
    function expire(uint256 requestId) external nonReentrant {
        Round storage r = _round(requestId);
        if (r.phase != Phase.Open) revert WrongPhase(requestId, r.phase);
        Params memory p = _paramHistory[r.paramsId];
        uint256 postDeadline = uint256(r.seedBlock) + p.postWindow;
        if (block.number <= postDeadline) revert PostWindowOpen(requestId, postDeadline);
        _end(r, Phase.Unposted, 0);
        if (!_pending(requestId)) return; // the core expired it already
        IInferenceHub.Outcome memory outcome;
        outcome.status = IInferenceHub.Status.Expired;
        if (_drawable(requestId, 1, r.seedBlock)) {
            outcome.penalized = _draw(requestId, 1, r.seedBlock);
            outcome.faults = new IInferenceHub.Fault[](1);
            outcome.faults[0] = IInferenceHub.Fault.Silent;
            outcome.bps = new uint16[](1);
            outcome.bps[0] = p.slashBpsSilence;
        }
        hub.settle(requestId, outcome, "");
    }

    // ------------------------------------------------------------------ challengers

    /// @notice Challenges the posted output: locks the challenge bond and pays the escalation's fee (the
    ///         caller approves both to this contract), and makes the escalation, a consensus request for
    ///         the same model version and input whose accepted output decides.
    /// @param requestId the request
    /// @param input the request's input (from `RequestCreated`)
    /// @param maxFee the most the caller pays for the escalation
    /// @return escalationId the consensus request
    function challenge(uint256 requestId, bytes calldata input, uint256 maxFee)
        external
        nonReentrant
        returns (uint256 escalationId)
    {
        Round storage r = _round(requestId);
        if (r.phase != Phase.Posted) revert WrongPhase(requestId, r.phase);
        if (block.number > r.challengeDeadline) revert ChallengeWindowClosed(requestId, r.challengeDeadline);
        if (keccak256(input) != _inputHashes[requestId]) revert InputMismatch(requestId);
        Params memory p = _paramHistory[r.paramsId];
        r.phase = Phase.Challenged;
        locked += p.challengeBond;
        uint256 fee;
        (escalationId, fee) = _escalate(requestId, p, input, maxFee, _poster(requestId));
        if (escalationId == 0) {
            // Nothing can check the post (the version was deprecated, or its pool has fewer than
            // escalationK operators): an unverifiable output is not accepted; both get their bonds back.
            locked -= uint256(p.postBond) + p.challengeBond;
            _undecided(requestId, r, p, msg.sender, uint256(p.challengeBond) + fee);
            return 0;
        }
        locked += fee;
        _challenges[requestId] = Challenge(msg.sender, uint64(escalationId));
        emit Challenged(requestId, msg.sender, escalationId, fee);
    }

    /// @dev Takes the challenge bond and the escalation's fee from the caller and makes the escalation,
    ///      whose committee leaves the poster out; (0, fee) when the core refuses it (then bond and fee are
    ///      the caller's again).
    function _escalate(uint256 requestId, Params memory p, bytes calldata input, uint256 maxFee, address poster)
        private
        returns (uint256 escalationId, uint256 fee)
    {
        IInferenceHub.Request memory parent = hub.getRequest(requestId);
        fee = hub.quote(parent.modelId, parent.version, p.escalationK);
        if (fee > maxFee) revert FeeAboveMax(fee, maxFee);
        _token.safeTransferFrom(msg.sender, address(this), uint256(p.challengeBond) + fee);
        IInferenceHub.InferenceRequest memory escalation;
        escalation.modelId = parent.modelId;
        escalation.version = parent.version;
        escalation.mode = ESCALATION_MODE;
        escalation.k = p.escalationK;
        escalation.maxFee = fee;
        escalation.input = input;
        try hub.requestInference(escalation) returns (uint256 id) {
            escalationId = id;
        } catch {
            return (0, fee);
        }
        IDrawExclusion(hub.modeContract(ESCALATION_MODE)).excludeFromDraw(escalationId, poster);
    }

    /// @notice Ends a challenged round once its escalation has ended (expiring the escalation first when
    ///         the core allows it): the escalation's accepted output decides who was right, bonds go to
    ///         the winner and the treasury, a wrong poster is slashed. Anyone may call. If the core expired
    ///         the request meanwhile, bonds and slashing follow the escalation all the same.
    /// @param requestId the request
    function resolve(uint256 requestId) external nonReentrant {
        Round storage r = _round(requestId);
        if (r.phase != Phase.Challenged) revert WrongPhase(requestId, r.phase);
        Challenge memory c = _challenges[requestId];
        IInferenceHub.Result memory esc = _ended(c.escalationId);
        Params memory p = _paramHistory[r.paramsId];
        uint256 fee = _feeOf(c.escalationId);
        locked -= uint256(p.postBond) + p.challengeBond + fee;
        address poster = _poster(requestId);
        bool accepted = esc.status == IInferenceHub.Status.Finalized || esc.status == IInferenceHub.Status.Failed;
        if (!accepted) {
            // The core refunded the escalation's whole fee to this contract: it goes back too.
            _undecided(requestId, r, p, c.challenger, uint256(p.challengeBond) + fee);
            return;
        }
        bytes32 digest = esc.outputDigest;
        if (digest == _digests[requestId]) {
            _end(r, Phase.Upheld, esc.errorCode);
            emit Resolved(requestId, Phase.Upheld, digest);
            _split(poster, p.postBond, p.challengeBond, p.winnerShareBps);
            _settle(requestId, r, digest, esc.output, poster);
            return;
        }
        _end(r, Phase.Overturned, esc.errorCode);
        _digests[requestId] = digest;
        emit Resolved(requestId, Phase.Overturned, digest);
        _split(c.challenger, p.challengeBond, p.postBond, p.winnerShareBps);
        hub.penalize(requestId, poster, IInferenceHub.Fault.Dissent, p.slashBpsWrong, c.challenger, p.rewardBps);
        _settle(requestId, r, digest, esc.output, address(0));
    }

    /// @notice Pays the treasury what this contract holds beyond what it owes (`locked`): the treasury's
    ///         shares of lost bonds and what resolved escalations refunded for members who did not agree.
    ///         Anyone may call, at any time: what a round still needs is never paid out.
    /// @return amount what the treasury was credited
    function sweep() external nonReentrant returns (uint256 amount) {
        uint256 held = _token.balanceOf(address(this)) + hub.claimable(address(this));
        amount = held > locked ? held - locked : 0;
        if (amount != 0) _credit(hub.treasury(), amount);
    }

    // ------------------------------------------------------------------ admin

    /// @notice Adds parameters for rounds opened from now on; rounds already open keep theirs.
    /// @param params_ the new parameters
    function setParams(Params calldata params_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setParams(params_);
    }

    // ------------------------------------------------------------------ views

    /// @notice The parameters rounds opened now get.
    /// @return the parameters
    function params() external view returns (Params memory) {
        return _paramHistory[_paramHistory.length - 1];
    }

    /// @notice A request's round; reverts UnknownRequest for a request of another mode.
    /// @param requestId the request
    /// @return v the round
    function getRound(uint256 requestId) external view returns (RoundView memory v) {
        Round storage r = _round(requestId);
        v.phase = r.phase;
        v.drawn = r.posterSlot != 0;
        v.maxOutputBytes = r.maxOutputBytes;
        v.params = _paramHistory[r.paramsId];
        v.seedBlock = r.seedBlock;
        v.postDeadline = r.seedBlock + uint40(v.params.postWindow);
        v.challengeDeadline = r.challengeDeadline;
        v.settledBlock = r.settledBlock;
        if (r.posterSlot != 0) v.poster = _committee(requestId, 1)[0];
        if (r.phase != Phase.Overturned) v.postedDigest = _digests[requestId];
        v.challenger = _challenges[requestId].challenger;
        v.escalationId = _challenges[requestId].escalationId;
    }

    /// @notice What was posted and is not final yet: the output stands unless challenged by
    ///         `challengeDeadline` (and a challenge may overturn it). Not a result: the core's `getResult`
    ///         says Pending until the round ends, and the requester's callback comes only then.
    /// @param requestId the request
    /// @return posted whether an output is posted and the round has not ended
    /// @return digest the posted output's digest
    /// @return output its bytes when stored (empty for digest-only requests)
    /// @return challengeDeadline the last block a challenge is accepted in
    /// @return challenged whether it is challenged
    function provisional(uint256 requestId)
        external
        view
        returns (bool posted, bytes32 digest, bytes memory output, uint40 challengeDeadline, bool challenged)
    {
        Round storage r = _round(requestId);
        posted = r.phase == Phase.Posted || r.phase == Phase.Challenged;
        if (!posted) return (false, bytes32(0), "", 0, false);
        digest = _digests[requestId];
        output = r.digestOnly ? bytes("") : _loadOutput(digest);
        return (true, digest, output, r.challengeDeadline, r.phase == Phase.Challenged);
    }

    /// @inheritdoc IVerificationMode
    function deadlineOf(uint256 requestId) external view returns (uint40) {
        Round storage r = _rounds[requestId];
        if (r.phase == Phase.None) return 0;
        if (r.phase == Phase.Open) return r.seedBlock + uint40(_paramHistory[r.paramsId].postWindow);
        if (r.phase != Phase.Challenged) return r.challengeDeadline;
        // The escalation can be expired EXPIRY_GRACE blocks after its own deadline, and then resolved.
        uint256 escalationId = _challenges[requestId].escalationId;
        uint256 deadline = IVerificationMode(hub.modeContract(ESCALATION_MODE)).deadlineOf(escalationId);
        return uint40(deadline + hub.EXPIRY_GRACE());
    }

    /// @inheritdoc IVerificationMode
    function resultOf(uint256 requestId)
        external
        view
        returns (bytes32 digest, bytes memory output, address[] memory agreeing, uint40 settledBlock, uint8 errorCode)
    {
        Round storage r = _round(requestId);
        Phase phase = r.phase;
        if (phase != Phase.Upheld && phase != Phase.Overturned) {
            return (bytes32(0), "", new address[](0), r.settledBlock, 0);
        }
        digest = _digests[requestId];
        if (r.digestOnly) output = "";
        else if (phase == Phase.Upheld) output = _loadOutput(digest);
        else output = hub.getResult(_challenges[requestId].escalationId).output; // kept by the escalation
        agreeing = phase == Phase.Upheld ? _committee(requestId, 1) : new address[](0);
        return (digest, output, agreeing, r.settledBlock, r.errorCode);
    }

    // ------------------------------------------------------------------ internals

    function _setParams(Params memory p) private {
        if (p.postWindow == 0 || p.postWindow >= SEED_HORIZON || p.challengeWindow == 0 || p.escalationBlocks == 0) {
            revert InvalidParams();
        }
        if (p.escalationK < 3 || p.escalationK % 2 == 0 || p.escalationK > 15) revert InvalidParams();
        if (p.slashBpsWrong > BPS || p.slashBpsSilence > BPS || p.rewardBps > BPS / 2) revert InvalidParams();
        if (p.winnerShareBps > BPS || _paramHistory.length > type(uint16).max) revert InvalidParams();
        // The latest a resolve can be sure to slash: the escalation's deadline, then the core's grace
        // before anyone can expire it (which the base check adds).
        _checkUnbondingCovers(uint256(p.postWindow) + p.challengeWindow + p.escalationBlocks);
        _paramHistory.push(p);
        emit ParamsUpdated(uint16(_paramHistory.length - 1), p);
    }

    function _drawState(uint256 requestId) internal view override returns (uint256, uint256, bool) {
        Round storage r = _round(requestId);
        return (1, r.seedBlock, r.posterSlot != 0);
    }

    function _keepCommittee(uint256 requestId, address[] memory, uint256[] memory slots) internal override {
        _rounds[requestId].posterSlot = uint32(slots[0] + 1);
    }

    function _committee(uint256 requestId, uint256) internal view override returns (address[] memory) {
        uint256[] memory slots = new uint256[](1);
        slots[0] = _rounds[requestId].posterSlot - 1;
        return staking.membersAt(hub.poolOf(requestId), slots);
    }

    function _round(uint256 requestId) private view returns (Round storage r) {
        r = _rounds[requestId];
        if (r.phase == Phase.None) revert UnknownRequest(requestId);
    }

    /// @dev The poster of a posted round.
    function _poster(uint256 requestId) private view returns (address) {
        return _committee(requestId, 1)[0];
    }

    function _end(Round storage r, Phase phase, uint8 errorCode) private {
        r.phase = phase;
        r.settledBlock = uint40(block.number);
        r.errorCode = errorCode;
    }

    /// @dev Whether the core still waits for this round (its `expire` may have ended it).
    function _pending(uint256 requestId) private view returns (bool) {
        return hub.getRequest(requestId).status == IInferenceHub.Status.Pending;
    }

    /// @dev The escalation's result once it has ended; expires it first when the core allows.
    function _ended(uint256 escalationId) private returns (IInferenceHub.Result memory esc) {
        if (hub.getRequest(escalationId).status != IInferenceHub.Status.Pending) return hub.getResult(escalationId);
        uint256 deadline = IVerificationMode(hub.modeContract(ESCALATION_MODE)).deadlineOf(escalationId);
        if (block.number <= deadline + hub.EXPIRY_GRACE()) revert EscalationPending(escalationId);
        hub.expire(escalationId);
        return hub.getResult(escalationId);
    }

    /// @dev What an escalation cost, which the core refunds in full when it accepts nothing.
    function _feeOf(uint256 escalationId) private view returns (uint256) {
        IInferenceHub.Request memory e = hub.getRequest(escalationId);
        return uint256(e.modelFee) + uint256(e.k) * e.operatorFee + e.protocolFee;
    }

    /// @dev Ends a challenged round Disputed: bonds back (the challenger's with `challengerRefund`); the
    ///      caller has released them from `locked`.
    function _undecided(uint256 requestId, Round storage r, Params memory p, address challenger, uint256 challengerRefund)
        private
    {
        _end(r, Phase.Undecided, 0);
        emit Resolved(requestId, Phase.Undecided, bytes32(0));
        _credit(_poster(requestId), p.postBond);
        _credit(challenger, challengerRefund);
        if (_pending(requestId)) hub.settle(requestId, _disputed(), "");
    }

    function _disputed() private pure returns (IInferenceHub.Outcome memory outcome) {
        outcome.status = IInferenceHub.Status.Disputed;
    }

    /// @dev The winner gets its own bond back and its share of the loser's; the treasury keeps the rest
    ///      here until `sweep`.
    function _split(address winner, uint256 ownBond, uint256 losersBond, uint16 winnerShareBps) private {
        _credit(winner, ownBond + (losersBond * winnerShareBps) / BPS);
    }

    /// @dev Settles the request with `output` when the core still waits for it; `poster` paid unless zero.
    function _settle(uint256 requestId, Round storage r, bytes32 digest, bytes memory output, address poster)
        private
    {
        if (!_pending(requestId)) return;
        IInferenceHub.Outcome memory outcome;
        outcome.errorCode = r.errorCode;
        outcome.status = r.errorCode == 0 ? IInferenceHub.Status.Finalized : IInferenceHub.Status.Failed;
        outcome.digest = digest;
        if (poster != address(0)) {
            outcome.paid = new address[](1);
            outcome.paid[0] = poster;
        }
        hub.settle(requestId, outcome, output);
    }

    /// @dev Credits `amount` to `account` in the core (pull payment), from this contract's tokens or, when
    ///      they fall short, its own credit in the core.
    function _credit(address account, uint256 amount) private {
        if (amount == 0) return;
        if (_token.balanceOf(address(this)) < amount) hub.claim();
        hub.deposit(account, amount);
    }
}
