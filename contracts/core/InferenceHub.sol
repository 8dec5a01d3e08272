// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IInferenceConsumer} from "../interfaces/IInferenceConsumer.sol";
import {IInferenceHub} from "../interfaces/IInferenceHub.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";
import {IOperatorStaking} from "../interfaces/IOperatorStaking.sol";
import {IVerificationMode} from "../interfaces/IVerificationMode.sol";
import {Pools} from "../libraries/Pools.sol";
import {TensorCodec} from "../libraries/TensorCodec.sol";

/// @title InferenceHub
/// @notice The core: requests in every mode, fee escrow, the outcome a mode contract reports (fee split,
///         penalties), callbacks to the requester. Payouts, refunds and deposits are credited; a credit
///         pays its owner's requests first and is pulled with `claim` (or pushed to its owner by anyone
///         with `claimFor`). Mode contracts are registered
///         once per mode bit and are the only ones that can settle or penalize their requests.
contract InferenceHub is IInferenceHub, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice k-of-n commit/reveal agreement.
    uint8 public constant MODE_CONSENSUS = 0x01;
    /// @notice EZKL proof checked by the version's verifier.
    uint8 public constant MODE_ZK = 0x02;
    /// @notice Bonded result with a challenge window.
    uint8 public constant MODE_OPTIMISTIC = 0x04;
    /// @notice EIP-712 attestations aggregated in one transaction.
    uint8 public constant MODE_ATTESTED = 0x08;
    /// @notice Largest committee; modes keep member state in 16-bit masks.
    uint8 public constant MAX_COMMITTEE = 16;
    /// @notice Blocks after a mode's deadline before `expire` may refund a request the mode left open;
    ///         a mode's unbonding check counts them.
    uint32 public constant EXPIRY_GRACE = 256;

    /// @dev Gas for the call itself (cold account access) and what the hub does after it returns.
    uint256 private constant CALLBACK_RESERVE = 15_000;
    uint8 private constant CALLBACK_OK = 1;
    uint8 private constant CALLBACK_FAILED = 2;

    /// @notice The fee and staking token.
    IERC20 public immutable token;
    /// @notice The model registry.
    IModelRegistry public immutable registry;
    /// @notice Operator stake; this hub holds its SLASHER_ROLE.
    IOperatorStaking public immutable staking;
    /// @notice Receives protocol fees and slashed stake.
    address public treasury;
    /// @notice Number of requests made; ids run from 1.
    uint256 public requestCount;
    /// @notice Tokens credited to each account (earnings, refunds, deposits): they pay the account's
    ///         requests first and are withdrawn with `claim`.
    mapping(address account => uint256) public claimable;

    Params private _params;
    mapping(uint8 mode => address) private _modes;
    mapping(uint256 requestId => Request) private _requests;
    /// @dev Block a request was expired in by the safety net (its mode never settled it).
    mapping(uint256 requestId => uint256) private _expiredAt;
    /// @dev Operator fees a settled request holds for members whose agreement may still be shown.
    mapping(uint256 requestId => uint256) private _held;

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
        requestId = ++requestCount;
        (uint256 fee, uint40 seedBlock, uint40 deadline) = _open(requestId, request);
        _announce(requestId, request, fee, seedBlock, deadline);
        _collect(fee);
    }

    // ------------------------------------------------------------------ settlement (mode contracts)

    /// @inheritdoc IInferenceHub
    function settle(uint256 requestId, Outcome calldata outcome, bytes calldata output) external nonReentrant {
        Request storage r = _fromMode(requestId);
        Status status = outcome.status;
        uint256 paid = outcome.paid.length;
        uint256 penalized = outcome.penalized.length;
        bool accepted = status == Status.Finalized || status == Status.Failed;
        uint256 held = outcome.held;
        if (
            !(accepted || status == Status.Disputed || status == Status.Expired) || paid + held > r.k
                || (!accepted && (paid + held != 0 || outcome.digest != bytes32(0) || output.length != 0))
                || (accepted && keccak256(output) != outcome.digest)
                || (outcome.errorCode != 0) != (status == Status.Failed) || outcome.faults.length != penalized
                || outcome.bps.length != penalized
        ) revert InvalidOutcome(requestId);
        r.status = status;
        if (held != 0) _held[requestId] = held;
        emit RequestSettled(requestId, status, outcome.digest, outcome.errorCode, output);
        _distribute(requestId, r, outcome.paid, held, accepted, status == Status.Finalized);
        for (uint256 i = 0; i < penalized; ++i) {
            _slash(requestId, outcome.penalized[i], outcome.faults[i], outcome.bps[i], address(0), 0);
        }
        if (r.callbackGasLimit != 0) _callback(requestId, r, status, output);
    }

    /// @inheritdoc IInferenceHub
    function penalize(uint256 requestId, address operator, Fault fault, uint16 bps, address reporter, uint16 rewardBps)
        external
        nonReentrant
        returns (uint256 amount)
    {
        Request storage r = _requests[requestId];
        if (r.status == Status.None) revert UnknownRequest(requestId);
        if (msg.sender != _modes[r.mode]) revert NotRequestMode(requestId, msg.sender);
        return _slash(requestId, operator, fault, bps, reporter, rewardBps);
    }

    /// @inheritdoc IInferenceHub
    function payHeld(uint256 requestId, address member) external nonReentrant {
        Request storage r = _settledByMode(requestId);
        uint256 held = _held[requestId];
        if (held == 0) revert NothingHeld(requestId);
        _held[requestId] = held - 1;
        uint256 fee = r.operatorFee;
        claimable[member] += fee;
        emit HeldFeePaid(requestId, member, fee);
    }

    /// @inheritdoc IInferenceHub
    function releaseHeld(uint256 requestId) external nonReentrant {
        Request storage r = _settledByMode(requestId);
        uint256 held = _held[requestId];
        if (held == 0) revert NothingHeld(requestId);
        _held[requestId] = 0;
        uint256 refund = held * r.operatorFee;
        claimable[r.requester] += refund;
        emit HeldFeesRefunded(requestId, refund);
    }

    /// @inheritdoc IInferenceHub
    function expire(uint256 requestId) external nonReentrant {
        Request storage r = _pending(requestId);
        uint256 expiresAfter = uint256(IVerificationMode(_modes[r.mode]).deadlineOf(requestId)) + EXPIRY_GRACE;
        if (block.number <= expiresAfter) revert TooEarlyToExpire(requestId, expiresAfter);
        r.status = Status.Expired;
        _expiredAt[requestId] = block.number;
        emit RequestSettled(requestId, Status.Expired, bytes32(0), 0, "");
        _distribute(requestId, r, new address[](0), 0, false, false);
        if (r.callbackGasLimit != 0) _callback(requestId, r, Status.Expired, "");
    }

    /// @inheritdoc IInferenceHub
    function deposit(address account, uint256 amount) external nonReentrant {
        if (account == address(0) || account == address(this) || amount == 0) revert InvalidDeposit();
        _pull(msg.sender, amount);
        claimable[account] += amount;
        emit Deposited(account, msg.sender, amount);
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

    /// @notice Replaces the parameters; requests already made keep their fees and caps.
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

    /// @notice Registers the contract that runs a mode. Once per bit and for good: a request's mode
    ///         contract can never be swapped under it, and no second contract can settle its requests.
    /// @param mode a single mode bit
    /// @param implementation the mode contract (built for this hub)
    function registerMode(uint8 mode, address implementation) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (mode == 0 || mode & (mode - 1) != 0 || _modes[mode] != address(0) || implementation == address(0)) {
            revert InvalidMode(mode);
        }
        _modes[mode] = implementation;
        emit ModeRegistered(mode, implementation);
    }

    // ------------------------------------------------------------------ views

    /// @notice The current parameters.
    /// @return the parameters
    function params() external view returns (Params memory) {
        return _params;
    }

    /// @inheritdoc IInferenceHub
    function modeContract(uint8 mode) external view returns (address) {
        return _modes[mode];
    }

    /// @inheritdoc IInferenceHub
    function quote(bytes32 modelId, uint32 version, uint8 k) external view returns (uint256) {
        IModelRegistry.Terms memory terms = registry.terms(modelId, version);
        return uint256(terms.fee) + uint256(k) * _params.operatorFee + _params.protocolFee;
    }

    /// @inheritdoc IInferenceHub
    function heldFees(uint256 requestId) external view returns (uint256) {
        return _held[requestId];
    }

    /// @inheritdoc IInferenceHub
    function getRequest(uint256 requestId) external view returns (Request memory) {
        return _known(requestId);
    }

    /// @inheritdoc IInferenceHub
    function modelOf(uint256 requestId) external view returns (bytes32) {
        return _known(requestId).modelId;
    }

    /// @inheritdoc IInferenceHub
    function poolOf(uint256 requestId) external view returns (bytes32) {
        Request storage r = _known(requestId);
        return Pools.id(r.modelId, registry.classOf(r.modelId, r.version));
    }

    /// @inheritdoc IInferenceHub
    function toleranceOf(uint256 requestId) external view returns (uint32, uint32) {
        Request storage r = _known(requestId);
        return registry.toleranceOf(r.modelId, r.version);
    }

    /// @inheritdoc IInferenceHub
    function getResult(uint256 requestId) external view returns (Result memory result) {
        Request storage r = _known(requestId);
        Status status = r.status;
        if (status == Status.Pending) revert ResultNotReady(requestId);
        result.status = status;
        result.callbackResult = r.callbackResult;
        uint256 expiredAt = _expiredAt[requestId];
        if (expiredAt != 0) {
            result.settledBlock = uint64(expiredAt);
            return result;
        }
        uint40 settledBlock;
        (result.outputDigest, result.output, result.agreeing, settledBlock, result.errorCode) =
            IVerificationMode(_modes[r.mode]).resultOf(requestId);
        result.settledBlock = settledBlock;
        if (r.digestOnly) result.output = "";
    }

    /// @inheritdoc IInferenceHub
    function verifyOutput(uint256 requestId, bytes calldata output) external view returns (bool) {
        Request storage r = _known(requestId);
        if (r.status != Status.Finalized && r.status != Status.Failed) return false;
        (bytes32 digest,,,,) = IVerificationMode(_modes[r.mode]).resultOf(requestId);
        return keccak256(output) == digest;
    }

    // ------------------------------------------------------------------ internals

    function _setParams(Params memory p) private {
        if (p.maxK == 0 || p.maxK > MAX_COMMITTEE) revert InvalidParams();
        if (p.maxInputBytes == 0 || p.maxOutputBytes < TensorCodec.ERROR_OUTPUT_LENGTH) revert InvalidParams();
        _params = p;
        emit ParamsUpdated(p);
    }

    function _store(uint256 requestId, InferenceRequest calldata request, uint96 modelFee, Params memory p) private {
        _requests[requestId] = Request({
            requester: msg.sender,
            status: Status.Pending,
            mode: request.mode,
            k: request.k,
            digestOnly: request.digestOnly,
            callbackGasLimit: request.callbackGasLimit,
            version: uint24(request.version),
            callbackResult: 0,
            modelId: request.modelId,
            modelFee: modelFee,
            operatorFee: p.operatorFee,
            protocolFee: p.protocolFee
        });
    }

    function _known(uint256 requestId) private view returns (Request storage r) {
        r = _requests[requestId];
        if (r.status == Status.None) revert UnknownRequest(requestId);
    }

    function _pending(uint256 requestId) private view returns (Request storage r) {
        r = _known(requestId);
        if (r.status != Status.Pending) revert RequestNotPending(requestId, r.status);
    }

    function _fromMode(uint256 requestId) private view returns (Request storage r) {
        r = _pending(requestId);
        if (msg.sender != _modes[r.mode]) revert NotRequestMode(requestId, msg.sender);
    }

    function _settledByMode(uint256 requestId) private view returns (Request storage r) {
        r = _known(requestId);
        if (msg.sender != _modes[r.mode]) revert NotRequestMode(requestId, msg.sender);
    }

    /// @dev Accepted (Finalized or Failed): each paid member its operator fee, the model owner its fee
    ///      when Finalized (a model that could not run on the input earns nothing), the treasury the
    ///      protocol fee, `held` operator fees kept for later, the rest back to the requester.
    ///      Otherwise all of it back to the requester.
    function _distribute(
        uint256 requestId,
        Request storage r,
        address[] memory paid,
        uint256 held,
        bool accepted,
        bool ownerPaid
    ) private {
        uint256 perOperator = r.operatorFee;
        uint256 total = uint256(r.modelFee) + r.k * perOperator + r.protocolFee;
        if (!accepted) {
            claimable[r.requester] += total;
            emit FeesDistributed(requestId, 0, 0, 0, 0, total);
            return;
        }
        for (uint256 i = 0; i < paid.length; ++i) {
            claimable[paid[i]] += perOperator;
        }
        uint256 ownerShare = ownerPaid ? r.modelFee : 0;
        if (ownerShare != 0) claimable[registry.ownerOf(r.modelId)] += ownerShare;
        claimable[treasury] += r.protocolFee;
        uint256 refund = total - (paid.length + held) * perOperator - ownerShare - r.protocolFee;
        if (refund != 0) claimable[r.requester] += refund;
        emit FeesDistributed(requestId, perOperator, paid.length, ownerShare, r.protocolFee, refund);
    }

    /// @dev Slashed stake goes to the treasury (less a reporter's reward), never to members who outvoted
    ///      the slashed one: a reward would pay a colluding majority for outvoting an honest member.
    function _slash(
        uint256 requestId,
        address operator,
        Fault fault,
        uint16 bps,
        address reporter,
        uint16 rewardBps
    ) private returns (uint256 slashed) {
        if (bps == 0) return 0;
        slashed = staking.slash(operator, bps, reporter, rewardBps);
        emit MemberPenalized(requestId, operator, fault, slashed);
    }

    function _payOut(address account) private returns (uint256 amount) {
        amount = claimable[account];
        if (amount == 0) revert NothingToClaim(account);
        claimable[account] = 0;
        emit Claimed(account, amount);
        token.safeTransfer(account, amount);
    }

    /// @dev Checks the request, stores it and opens its round in the mode contract.
    function _open(uint256 requestId, InferenceRequest calldata request)
        private
        returns (uint256 fee, uint40 seedBlock, uint40 deadline)
    {
        Params memory p = _params;
        (address mode, IModelRegistry.Terms memory terms) = _admit(request, p);
        fee = uint256(terms.fee) + uint256(request.k) * p.operatorFee + p.protocolFee;
        if (fee > request.maxFee) revert FeeExceedsMax(fee, request.maxFee);
        seedBlock = uint40(block.number + 1);
        bytes32 pool = Pools.id(request.modelId, terms.classId);
        uint256 eligible = staking.eligibleAt(pool, seedBlock);
        if (eligible < request.k) revert InsufficientOperators(pool, eligible, request.k);
        _store(requestId, request, terms.fee, p);
        IVerificationMode.Opening memory opening;
        opening.k = request.k;
        opening.seedBlock = seedBlock;
        opening.maxOutputBytes = terms.maxOutputBytes < p.maxOutputBytes ? terms.maxOutputBytes : p.maxOutputBytes;
        // A tolerance version's mode keeps every revealed output: a disagreement is judged by comparing
        // them. Digest-only still holds for what the core stores and returns.
        opening.digestOnly = request.digestOnly && (terms.toleranceUnits | terms.tolerancePpm) == 0;
        // The round binds the input's hash: a mode that re-runs or proves the request checks against it.
        opening.inputHash = keccak256(request.input);
        deadline = IVerificationMode(mode).open(requestId, opening);
    }

    /// @dev The request's mode contract and its version's terms; reverts for anything out of bounds.
    function _admit(InferenceRequest calldata request, Params memory p)
        private
        view
        returns (address mode, IModelRegistry.Terms memory terms)
    {
        if (request.k == 0 || request.k > p.maxK) revert InvalidRedundancy(request.k, p.maxK);
        if (request.input.length == 0 || request.input.length > p.maxInputBytes) {
            revert InvalidInputSize(request.input.length, p.maxInputBytes);
        }
        if (request.callbackGasLimit > p.maxCallbackGas) {
            revert InvalidCallbackGasLimit(request.callbackGasLimit, p.maxCallbackGas);
        }
        mode = _modes[request.mode];
        if (mode == address(0)) revert ModeNotSupported(request.mode);
        if (request.version > type(uint24).max) revert UnknownVersion(request.modelId, request.version);
        terms = registry.terms(request.modelId, request.version);
        if (terms.deprecated) revert VersionDeprecated(request.modelId, request.version);
        if (terms.modes & request.mode == 0) revert ModeNotSupported(request.mode);
    }

    function _announce(
        uint256 requestId,
        InferenceRequest calldata request,
        uint256 fee,
        uint40 seedBlock,
        uint40 deadline
    ) private {
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
            deadline,
            request.callbackGasLimit,
            request.digestOnly
        );
    }

    /// @dev Takes a request's fee from the caller's credit when that covers all of it, else by transfer.
    function _collect(uint256 fee) private {
        uint256 credit = claimable[msg.sender];
        if (credit >= fee) claimable[msg.sender] = credit - fee;
        else _pull(msg.sender, fee);
    }

    /// @dev Escrows exactly `amount`: a token that delivers less (a fee on transfer) is refused.
    function _pull(address from, uint256 amount) private {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(from, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert TransferAmountMismatch(amount, received);
    }

    /// @dev Results go to the requester and nobody else: a contract can only ever be called back for
    ///      requests it made (and paid for) itself.
    function _callback(uint256 requestId, Request storage r, Status status, bytes memory output) private {
        uint256 limit = r.callbackGasLimit;
        address target = r.requester;
        bytes memory data = abi.encodeCall(IInferenceConsumer.onInferenceResult, (requestId, uint8(status), output));
        // EIP-150 forwards at most 63/64 of the gas left. Checked after the call data is built (its
        // memory costs gas too), so a settler cannot starve the callback on purpose.
        uint256 required = limit + limit / 63 + CALLBACK_RESERVE;
        if (gasleft() < required) revert InsufficientGasForCallback(gasleft(), required);
        bool ok;
        assembly ("memory-safe") {
            // No return data is copied: a callback cannot grief settlement with a huge revert.
            ok := call(limit, target, 0, add(data, 0x20), mload(data), 0, 0)
        }
        r.callbackResult = ok ? CALLBACK_OK : CALLBACK_FAILED;
        emit CallbackExecuted(requestId, target, ok);
    }
}
