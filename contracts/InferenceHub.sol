// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IInferenceConsumer} from "./interfaces/IInferenceConsumer.sol";
import {IInferenceHub} from "./interfaces/IInferenceHub.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IOperatorStaking} from "./interfaces/IOperatorStaking.sol";
import {TensorCodec} from "./libraries/TensorCodec.sol";
import {OutputStore} from "./libraries/OutputStore.sol";

/// @title InferenceHub
/// @notice Consensus-mode settlement of inference requests: committees drawn from a future block's
///         hash over stake fixed before that hash existed, commit/reveal, strict-majority quorum, fee
///         split, slashing and callbacks to the requester. Payouts and refunds are credited and
///         pulled with `claim` (or pushed to their owner by anyone with `claimFor`).
contract InferenceHub is IInferenceHub, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice k-of-n commit/reveal agreement (implemented).
    uint8 public constant MODE_CONSENSUS = 0x01;
    /// @notice EZKL proof checked by the version's verifier (reserved).
    uint8 public constant MODE_ZK = 0x02;
    /// @notice Bonded result with a challenge window (reserved).
    uint8 public constant MODE_OPTIMISTIC = 0x04;
    /// @notice EIP-712 attestations aggregated in one transaction (reserved).
    uint8 public constant MODE_ATTESTED = 0x08;
    /// @notice Largest committee; member state lives in 16-bit masks.
    uint8 public constant MAX_COMMITTEE = 16;
    /// @notice Blocks after the reveal deadline within which someone is expected to finalize; the
    ///         staking unbonding period must cover a request's whole life plus this.
    uint32 public constant FINALIZE_GRACE = 256;

    uint256 private constant BPS = 10_000;
    /// @dev blockhash() reaches back this many blocks.
    uint256 private constant SEED_HORIZON = 256;
    /// @dev Gas for the call itself (cold account access) and what the hub does after it returns.
    uint256 private constant CALLBACK_RESERVE = 15_000;
    uint8 private constant CALLBACK_OK = 1;
    uint8 private constant CALLBACK_FAILED = 2;

    /// @dev One slot. The accepted digest is not repeated here: it is what every agreeing member revealed.
    struct Settlement {
        uint40 settledBlock;
        uint16 agreeMask;
        uint8 errorCode;
        uint8 callbackResult;
    }

    /// @notice The fee and staking token.
    IERC20 public immutable token;
    /// @notice The model registry.
    IModelRegistry public immutable registry;
    /// @notice Operator stake and the committee draw.
    IOperatorStaking public immutable staking;
    /// @notice Receives protocol fees and slashed stake.
    address public treasury;
    /// @notice Number of requests made; ids run from 1.
    uint256 public requestCount;
    /// @notice Tokens credited to each account, withdrawn with `claim`.
    mapping(address account => uint256) public claimable;

    Params private _params;
    mapping(uint256 requestId => Request) private _requests;
    /// @dev Committee members by position; the committee's size is the request's k.
    mapping(uint256 requestId => mapping(uint256 member => address)) private _members;
    /// @dev Per member: the commitment until it reveals, then the revealed digest.
    mapping(uint256 requestId => mapping(uint256 member => bytes32)) private _memberHashes;
    mapping(uint256 requestId => Settlement) private _settlements;
    /// @dev Revealed outputs by digest, stored once however many requests share them (`OutputStore`:
    ///      in the code of data contracts, about 200 gas a byte); the first data contract's address.
    mapping(bytes32 digest => address) private _outputPointers;

    /// @param token_ fee token (the staking token)
    /// @param registry_ model registry
    /// @param staking_ operator staking; this hub needs its SLASHER_ROLE
    /// @param treasury_ protocol treasury
    /// @param params_ initial parameters
    /// @param admin holder of DEFAULT_ADMIN_ROLE
    constructor(
        IERC20 token_,
        IModelRegistry registry_,
        IOperatorStaking staking_,
        address treasury_,
        Params memory params_,
        address admin
    ) {
        if (address(token_) == address(0) || address(registry_) == address(0) || address(staking_) == address(0)) {
            revert InvalidParams();
        }
        if (treasury_ == address(0) || admin == address(0)) revert InvalidParams();
        token = token_;
        registry = registry_;
        staking = staking_;
        treasury = treasury_;
        _setParams(params_);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ------------------------------------------------------------------ requests

    /// @inheritdoc IInferenceHub
    function requestInference(InferenceRequest calldata request) external nonReentrant returns (uint256 requestId) {
        Params memory p = _params;
        if (request.k == 0 || request.k > p.maxK) revert InvalidRedundancy(request.k, p.maxK);
        if (request.input.length == 0 || request.input.length > p.maxInputBytes) {
            revert InvalidInputSize(request.input.length, p.maxInputBytes);
        }
        if (request.callbackGasLimit > p.maxCallbackGas) {
            revert InvalidCallbackGasLimit(request.callbackGasLimit, p.maxCallbackGas);
        }
        if (request.mode != MODE_CONSENSUS) revert ModeNotSupported(request.mode);
        if (request.version > type(uint24).max) revert UnknownVersion(request.modelId, request.version);
        IModelRegistry.Terms memory terms = registry.terms(request.modelId, request.version);
        if (terms.deprecated) revert VersionDeprecated(request.modelId, request.version);
        if (terms.modes & MODE_CONSENSUS == 0) revert ModeNotSupported(request.mode);
        uint256 fee = uint256(terms.fee) + uint256(request.k) * p.operatorFee + p.protocolFee;
        if (fee > request.maxFee) revert FeeExceedsMax(fee, request.maxFee);
        uint40 seedBlock = uint40(block.number + 1);
        uint256 eligible = staking.eligibleAt(request.modelId, seedBlock);
        if (eligible < request.k) revert InsufficientOperators(request.modelId, eligible, request.k);

        requestId = ++requestCount;
        uint40 commitDeadline = seedBlock + p.commitWindow;
        uint40 revealDeadline = commitDeadline + p.revealWindow;
        _requests[requestId] = Request({
            requester: msg.sender,
            status: Status.Pending,
            k: request.k,
            mode: request.mode,
            committedMask: 0,
            revealedMask: 0,
            seedBlock: seedBlock,
            commitDeadline: commitDeadline,
            revealDeadline: revealDeadline,
            callbackGasLimit: request.callbackGasLimit,
            version: uint24(request.version),
            maxOutputBytes: terms.maxOutputBytes < p.maxOutputBytes ? terms.maxOutputBytes : p.maxOutputBytes,
            slashBpsDissent: p.slashBpsDissent,
            slashBpsSilence: p.slashBpsSilence,
            digestOnly: request.digestOnly,
            drawn: false,
            modelId: request.modelId,
            modelFee: terms.fee,
            operatorFee: p.operatorFee,
            protocolFee: p.protocolFee
        });
        emit RequestCreated(
            requestId,
            request.modelId,
            msg.sender,
            request.version,
            request.mode,
            request.k,
            request.input,
            fee,
            seedBlock,
            commitDeadline,
            revealDeadline,
            request.callbackGasLimit,
            request.digestOnly
        );
        _pull(msg.sender, fee);
    }

    /// @inheritdoc IInferenceHub
    function draw(uint256 requestId) external nonReentrant returns (address[] memory committee) {
        Request storage r = _pending(requestId);
        if (r.drawn) return _committee(requestId, r.k);
        return _draw(requestId, r);
    }

    // ------------------------------------------------------------------ commit / reveal

    /// @inheritdoc IInferenceHub
    function commit(uint256 requestId, bytes32 commitment) external nonReentrant {
        _commit(requestId, commitment);
    }

    /// @inheritdoc IInferenceHub
    function commitMany(uint256[] calldata requestIds, bytes32[] calldata commitments) external nonReentrant {
        if (requestIds.length == 0 || requestIds.length != commitments.length) revert BatchLengthMismatch();
        for (uint256 i = 0; i < requestIds.length; ++i) _commit(requestIds[i], commitments[i]);
    }

    /// @inheritdoc IInferenceHub
    function reveal(uint256 requestId, bytes calldata output, bytes32 salt) external nonReentrant {
        _reveal(requestId, output, salt);
    }

    /// @inheritdoc IInferenceHub
    function revealMany(uint256[] calldata requestIds, bytes[] calldata outputs, bytes32[] calldata salts)
        external
        nonReentrant
    {
        if (requestIds.length == 0 || requestIds.length != outputs.length || requestIds.length != salts.length) {
            revert BatchLengthMismatch();
        }
        for (uint256 i = 0; i < requestIds.length; ++i) _reveal(requestIds[i], outputs[i], salts[i]);
    }

    /// @inheritdoc IInferenceHub
    function finalize(uint256 requestId) external nonReentrant {
        Request storage r = _pending(requestId);
        if (!_finalizable(r)) revert TooEarlyToFinalize(requestId);
        _settle(requestId, r, msg.data[0:0], bytes32(0), false);
    }

    /// @inheritdoc IInferenceHub
    function finalizeWithOutput(uint256 requestId, bytes calldata output) external nonReentrant {
        Request storage r = _pending(requestId);
        if (!_finalizable(r)) revert TooEarlyToFinalize(requestId);
        _settle(requestId, r, output, keccak256(output), false);
    }

    /// @inheritdoc IInferenceHub
    function claim() external nonReentrant returns (uint256 amount) {
        return _payOut(msg.sender);
    }

    /// @inheritdoc IInferenceHub
    function claimFor(address account) external nonReentrant returns (uint256 amount) {
        return _payOut(account);
    }

    // ------------------------------------------------------------------ admin

    /// @notice Replaces the parameters; requests already made keep their deadlines, fees and rates.
    /// @param params_ the new parameters
    function setParams(Params calldata params_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setParams(params_);
    }

    /// @notice Sets the treasury for future settlements.
    /// @param treasury_ the new treasury
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert InvalidParams();
        treasury = treasury_;
        emit TreasuryUpdated(treasury_);
    }

    // ------------------------------------------------------------------ views

    /// @notice The current parameters.
    /// @return the parameters
    function params() external view returns (Params memory) {
        return _params;
    }

    /// @inheritdoc IInferenceHub
    function quote(bytes32 modelId, uint32 version, uint8 k) external view returns (uint256) {
        IModelRegistry.Terms memory terms = registry.terms(modelId, version);
        return uint256(terms.fee) + uint256(k) * _params.operatorFee + _params.protocolFee;
    }

    /// @inheritdoc IInferenceHub
    function getRequest(uint256 requestId) external view returns (Request memory) {
        return _known(requestId);
    }

    /// @inheritdoc IInferenceHub
    function getCommittee(uint256 requestId) external view returns (address[] memory) {
        Request storage r = _known(requestId);
        return r.drawn ? _committee(requestId, r.k) : new address[](0);
    }

    /// @inheritdoc IInferenceHub
    function previewCommittee(uint256 requestId) external view returns (address[] memory) {
        Request storage r = _known(requestId);
        if (r.drawn) return _committee(requestId, r.k);
        return staking.drawCommittee(r.modelId, r.k, _seed(requestId, r), r.seedBlock);
    }

    /// @inheritdoc IInferenceHub
    function getResult(uint256 requestId) external view returns (Result memory result) {
        Request storage r = _known(requestId);
        Status status = r.status;
        if (status == Status.Pending) revert ResultNotReady(requestId);
        Settlement storage s = _settlements[requestId];
        address[] memory committee = r.drawn ? _committee(requestId, r.k) : new address[](0);
        uint256 agreeing;
        for (uint256 i = 0; i < committee.length; ++i) {
            if (s.agreeMask & (1 << i) != 0) ++agreeing;
        }
        result.agreeing = new address[](agreeing);
        uint256 n;
        for (uint256 i = 0; i < committee.length; ++i) {
            if (s.agreeMask & (1 << i) != 0) result.agreeing[n++] = committee[i];
        }
        result.status = status;
        result.outputDigest = _acceptedDigest(requestId, s.agreeMask);
        if (result.outputDigest != bytes32(0) && !r.digestOnly) result.output = _loadOutput(result.outputDigest);
        result.settledBlock = s.settledBlock;
        result.errorCode = s.errorCode;
        result.callbackResult = s.callbackResult;
    }

    /// @inheritdoc IInferenceHub
    function verifyOutput(uint256 requestId, bytes calldata output) external view returns (bool) {
        Request storage r = _known(requestId);
        if (r.status != Status.Finalized && r.status != Status.Failed) return false;
        return keccak256(output) == _acceptedDigest(requestId, _settlements[requestId].agreeMask);
    }

    /// @inheritdoc IInferenceHub
    function canFinalize(uint256 requestId) external view returns (bool) {
        Request storage r = _requests[requestId];
        return r.status == Status.Pending && _finalizable(r);
    }

    // ------------------------------------------------------------------ internals

    function _setParams(Params memory p) private {
        if (p.commitWindow == 0 || p.commitWindow >= SEED_HORIZON || p.revealWindow == 0) revert InvalidParams();
        if (p.maxK == 0 || p.maxK > MAX_COMMITTEE) revert InvalidParams();
        if (p.slashBpsDissent > BPS || p.slashBpsSilence > BPS) revert InvalidParams();
        if (p.maxInputBytes == 0 || p.maxOutputBytes < TensorCodec.ERROR_OUTPUT_LENGTH) revert InvalidParams();
        // A member's stake must stay slashable for the whole life of every request it can be drawn for:
        // an unbonding operator is drawn on its old weight until its epoch ends, then the request runs.
        uint256 span = staking.epochBlocks() + 1 + uint256(p.commitWindow) + p.revealWindow + FINALIZE_GRACE;
        if (span > staking.unbondingPeriod()) revert InvalidParams();
        _params = p;
        emit ParamsUpdated(p);
    }

    function _known(uint256 requestId) private view returns (Request storage r) {
        r = _requests[requestId];
        if (r.status == Status.None) revert UnknownRequest(requestId);
    }

    function _pending(uint256 requestId) private view returns (Request storage r) {
        r = _known(requestId);
        if (r.status != Status.Pending) revert RequestNotPending(requestId, r.status);
    }

    /// @dev Reverts unless the seed block's hash is readable: after it is mined, for 256 blocks.
    function _seed(uint256 requestId, Request storage r) private view returns (uint256) {
        uint256 seedBlock = r.seedBlock;
        if (block.number <= seedBlock) revert SeedNotReady(requestId, seedBlock);
        bytes32 hash = blockhash(seedBlock);
        if (hash == bytes32(0)) revert SeedUnavailable(requestId, seedBlock);
        return uint256(keccak256(abi.encode(hash, requestId)));
    }

    function _draw(uint256 requestId, Request storage r) private returns (address[] memory committee) {
        committee = staking.drawCommittee(r.modelId, r.k, _seed(requestId, r), r.seedBlock);
        mapping(uint256 => address) storage members = _members[requestId];
        for (uint256 i = 0; i < committee.length; ++i) {
            members[i] = committee[i];
        }
        r.drawn = true;
        emit CommitteeDrawn(requestId, committee);
    }

    /// @dev The committee if it can be drawn; empty when the seed is gone or the pool shrank below k
    ///      (the request then expires with a full refund and nobody is penalized).
    function _drawIfPossible(uint256 requestId, Request storage r) private returns (bool) {
        if (r.drawn) return true;
        if (block.number > uint256(r.seedBlock) + SEED_HORIZON) return false;
        if (staking.eligibleAt(r.modelId, r.seedBlock) < r.k) return false;
        _draw(requestId, r);
        return true;
    }

    function _memberIndex(uint256 requestId, uint256 k, address operator) private view returns (uint256) {
        mapping(uint256 => address) storage members = _members[requestId];
        for (uint256 i = 0; i < k; ++i) {
            if (members[i] == operator) return i;
        }
        revert NotCommitteeMember(requestId, operator);
    }

    function _committee(uint256 requestId, uint256 k) private view returns (address[] memory committee) {
        committee = new address[](k);
        mapping(uint256 => address) storage members = _members[requestId];
        for (uint256 i = 0; i < k; ++i) {
            committee[i] = members[i];
        }
    }

    /// @dev The digest the agreeing members revealed (zero when none agreed: Disputed or Expired).
    function _acceptedDigest(uint256 requestId, uint16 agreeMask) private view returns (bytes32) {
        if (agreeMask == 0) return bytes32(0);
        uint256 first;
        while (agreeMask & (1 << first) == 0) ++first;
        return _memberHashes[requestId][first];
    }

    function _fullMask(uint8 k) private pure returns (uint16) {
        return uint16((uint256(1) << k) - 1);
    }

    function _finalizable(Request storage r) private view returns (bool) {
        if (block.number > r.revealDeadline) return true;
        uint16 committed = r.committedMask;
        if (committed == 0) return block.number > r.commitDeadline;
        // Everyone who could reveal has (a digest-only request waiting for its output's bytes).
        return r.revealedMask == committed && (committed == _fullMask(r.k) || block.number > r.commitDeadline);
    }

    function _commit(uint256 requestId, bytes32 commitment) private {
        Request storage r = _pending(requestId);
        if (block.number > r.commitDeadline) revert CommitWindowClosed(requestId, r.commitDeadline);
        if (!r.drawn) _draw(requestId, r);
        uint256 member = _memberIndex(requestId, r.k, msg.sender);
        uint16 bit = uint16(1 << member);
        if (r.committedMask & bit != 0) revert AlreadyCommitted(requestId, msg.sender);
        r.committedMask |= bit;
        _memberHashes[requestId][member] = commitment;
        emit Committed(requestId, msg.sender, commitment);
    }

    function _reveal(uint256 requestId, bytes calldata output, bytes32 salt) private {
        Request storage r = _pending(requestId);
        uint16 full = _fullMask(r.k);
        if (r.committedMask != full && block.number <= r.commitDeadline) revert RevealNotOpen(requestId);
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
        if (r.revealedMask == r.committedMask && (r.committedMask == full || block.number > r.commitDeadline)) {
            _settle(requestId, r, output, digest, true);
        }
    }

    /// @dev `hint` is an output in calldata whose digest is `hintDigest`, so the common case (the last
    ///      revealer agrees) needs no storage read. A digest-only request whose accepted bytes are not at
    ///      hand waits for `finalizeWithOutput` when `mayDefer`, and reverts OutputRequired otherwise.
    function _settle(uint256 requestId, Request storage r, bytes calldata hint, bytes32 hintDigest, bool mayDefer)
        private
    {
        if (!_drawIfPossible(requestId, r)) {
            _close(requestId, r, Status.Expired, 0, 0, bytes32(0), "");
            _distribute(requestId, r, new address[](0), Status.Expired, 0, 0);
            if (r.callbackGasLimit != 0) _callback(requestId, r, Status.Expired, "");
            return;
        }
        uint256 k = r.k;
        uint16 revealed = r.revealedMask;
        bytes32[] memory digests = new bytes32[](k);
        for (uint256 i = 0; i < k; ++i) {
            if (revealed & (1 << i) != 0) digests[i] = _memberHashes[requestId][i];
        }
        (bytes32 best, uint16 agreeMask, uint256 agreeing) = _tally(digests, revealed);

        Status status;
        uint8 errorCode;
        bytes memory output;
        if (revealed == 0) {
            status = Status.Expired;
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
            errorCode = TensorCodec.errorCodeOf(output);
            status = errorCode == 0 ? Status.Finalized : Status.Failed;
        } else {
            status = Status.Disputed;
            agreeMask = 0;
            agreeing = 0;
            best = bytes32(0);
        }
        address[] memory committee = _committee(requestId, k);
        _close(requestId, r, status, agreeMask, errorCode, best, output);
        _distribute(requestId, r, committee, status, agreeMask, agreeing);
        _penalize(requestId, r, committee, revealed, agreeMask, agreeing);
        if (r.callbackGasLimit != 0) _callback(requestId, r, status, output);
    }

    function _close(
        uint256 requestId,
        Request storage r,
        Status status,
        uint16 agreeMask,
        uint8 errorCode,
        bytes32 digest,
        bytes memory output
    ) private {
        r.status = status;
        _settlements[requestId] = Settlement({
            settledBlock: uint40(block.number),
            agreeMask: agreeMask,
            errorCode: errorCode,
            callbackResult: 0
        });
        emit RequestSettled(requestId, status, digest, errorCode, agreeMask, output);
    }

    function _tally(bytes32[] memory digests, uint16 revealed)
        private
        pure
        returns (bytes32 best, uint16 agreeMask, uint256 agreeing)
    {
        uint256 k = digests.length;
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

    function _distribute(
        uint256 requestId,
        Request storage r,
        address[] memory committee,
        Status status,
        uint16 agreeMask,
        uint256 agreeing
    ) private {
        uint256 perOperator = r.operatorFee;
        uint256 total = uint256(r.modelFee) + r.k * perOperator + r.protocolFee;
        if (status != Status.Finalized && status != Status.Failed) {
            claimable[r.requester] += total;
            emit FeesDistributed(requestId, 0, 0, 0, 0, total);
            return;
        }
        for (uint256 i = 0; i < committee.length; ++i) {
            if (agreeMask & (1 << i) != 0) claimable[committee[i]] += perOperator;
        }
        // A model that could not run on the input earns its owner nothing.
        uint256 ownerShare = status == Status.Finalized ? r.modelFee : 0;
        if (ownerShare != 0) claimable[registry.ownerOf(r.modelId)] += ownerShare;
        claimable[treasury] += r.protocolFee;
        uint256 refund = total - agreeing * perOperator - ownerShare - r.protocolFee;
        if (refund != 0) claimable[r.requester] += refund;
        emit FeesDistributed(requestId, perOperator, agreeing, ownerShare, r.protocolFee, refund);
    }

    /// @dev Slashed stake goes to the treasury, never to the members who outvoted the slashed one: a
    ///      reward would pay a colluding majority for outvoting an honest member.
    function _penalize(
        uint256 requestId,
        Request storage r,
        address[] memory committee,
        uint16 revealed,
        uint16 agreeMask,
        uint256 agreeing
    ) private {
        uint16 committed = r.committedMask;
        for (uint256 i = 0; i < committee.length; ++i) {
            uint16 bit = uint16(1 << i);
            if (agreeMask & bit != 0) continue;
            Fault fault;
            if (committed & bit == 0) fault = Fault.Silent;
            else if (revealed & bit == 0) fault = Fault.Withheld;
            else if (agreeing != 0) fault = Fault.Dissent;
            else continue; // disagreeing without a quorum is no fault: nobody knows who was right
            uint16 bps = fault == Fault.Silent ? r.slashBpsSilence : r.slashBpsDissent;
            if (bps == 0) continue;
            uint256 slashed = staking.slash(committee[i], bps, address(0), 0);
            emit MemberPenalized(requestId, committee[i], fault, slashed);
        }
    }

    function _payOut(address account) private returns (uint256 amount) {
        amount = claimable[account];
        if (amount == 0) revert NothingToClaim(account);
        claimable[account] = 0;
        emit Claimed(account, amount);
        token.safeTransfer(account, amount);
    }

    /// @dev Escrows exactly `amount`: a token that delivers less (a fee on transfer) is refused.
    function _pull(address from, uint256 amount) private {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(from, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert TransferAmountMismatch(amount, received);
    }

    function _storeOutput(bytes32 digest, bytes calldata output) private {
        if (_outputPointers[digest] != address(0)) return;
        address first = OutputStore.write(output);
        if (first == address(0)) revert OutputNotStored(digest);
        _outputPointers[digest] = first;
    }

    function _loadOutput(bytes32 digest) private view returns (bytes memory) {
        return OutputStore.read(_outputPointers[digest]);
    }

    /// @dev Results go to the requester and nobody else: a contract can only ever be called back for
    ///      requests it made (and paid for) itself.
    function _callback(uint256 requestId, Request storage r, Status status, bytes memory output) private {
        uint256 limit = r.callbackGasLimit;
        address target = r.requester;
        bytes memory data = abi.encodeCall(IInferenceConsumer.onInferenceResult, (requestId, uint8(status), output));
        // EIP-150 forwards at most 63/64 of the gas left. Checked after the call data is built (its
        // memory costs gas too), so a finalizer cannot starve the callback on purpose.
        uint256 required = limit + limit / 63 + CALLBACK_RESERVE;
        if (gasleft() < required) revert InsufficientGasForCallback(gasleft(), required);
        bool ok;
        assembly ("memory-safe") {
            // No return data is copied: a callback cannot grief settlement with a huge revert.
            ok := call(limit, target, 0, add(data, 0x20), mload(data), 0, 0)
        }
        _settlements[requestId].callbackResult = ok ? CALLBACK_OK : CALLBACK_FAILED;
        emit CallbackExecuted(requestId, target, ok);
    }
}
