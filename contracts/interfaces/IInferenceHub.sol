// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IInferenceHub
/// @notice The core every dapp talks to: takes inference requests in any verification mode, escrows
///         their fees, hands each to the mode contract registered for it, and applies the one outcome
///         that contract reports (fee split, penalties, the requester's callback). How a mode reaches
///         its answer lives in the mode contract, never here.
interface IInferenceHub {
    /// @notice Lifecycle of a request. Finalized, Failed, Disputed and Expired are terminal.
    enum Status {
        None,
        Pending,
        Finalized,
        Failed,
        Disputed,
        Expired
    }

    /// @notice Why a member lost stake.
    enum Fault {
        None,
        /// never acted (consensus: never committed): the silence rate
        Silent,
        /// committed but never revealed: the dissent rate
        Withheld,
        /// put forward an output other than the accepted one: the dissent rate
        Dissent,
        /// signed two different outputs for one request: the dissent rate, part to the reporter
        Equivocation
    }

    /// @notice Core parameters; every value a request depends on is copied into it when it is made.
    ///         Windows and slash rates are the mode contracts' own parameters.
    struct Params {
        uint8 maxK;
        uint32 maxInputBytes;
        /// @dev cap on every version's own maxOutputBytes
        uint32 maxOutputBytes;
        uint32 maxCallbackGas;
        uint96 operatorFee;
        uint64 protocolFee;
    }

    /// @notice What a requester asks for.
    /// @param modelId the model
    /// @param version the model version
    /// @param mode verification mode bit (MODE_CONSENSUS, MODE_ATTESTED, ...); the version must allow it
    /// @param k committee size (redundancy)
    /// @param callbackGasLimit gas for the requester's `onInferenceResult`; zero for no callback
    /// @param digestOnly keep only the output's digest on-chain (the settlement event and the
    ///        callback still carry the bytes; `verifyOutput` checks bytes against the digest)
    /// @param maxFee the most the requester will pay
    /// @param input abi-encoded input tensors (TensorCodec)
    struct InferenceRequest {
        bytes32 modelId;
        uint32 version;
        uint8 mode;
        uint8 k;
        uint32 callbackGasLimit;
        bool digestOnly;
        uint256 maxFee;
        bytes input;
    }

    /// @notice A request as the core stores it (three slots); its round lives in the mode contract.
    // solhint-disable-next-line gas-struct-packing
    struct Request {
        address requester;
        Status status;
        uint8 mode;
        uint8 k;
        bool digestOnly;
        uint32 callbackGasLimit;
        uint24 version;
        /// @dev 0 none yet, 1 ran, 2 reverted or ran out of gas
        uint8 callbackResult;
        bytes32 modelId;
        uint96 modelFee;
        uint96 operatorFee;
        uint64 protocolFee;
    }

    /// @notice What a mode contract reports when a request's round ends.
    /// @param status Finalized, Failed, Disputed or Expired
    /// @param errorCode canonical error code when Failed, else zero
    /// @param digest keccak256 of the accepted output (zero when Disputed or Expired)
    /// @param paid members who earn the operator fee (only when Finalized or Failed)
    /// @param penalized members who lose stake
    /// @param faults why, one per penalized member
    /// @param bps the slash rate, one per penalized member (fixed when the request was made)
    /// @param held operator fees kept back for members whose agreement may still be shown (attested
    ///        mode: a submitter left their signatures out); paid with `payHeld`, the rest refunded by
    ///        `releaseHeld`. Only when Finalized or Failed, at most k minus the paid members.
    // solhint-disable-next-line gas-struct-packing
    struct Outcome {
        Status status;
        uint8 errorCode;
        bytes32 digest;
        address[] paid;
        address[] penalized;
        Fault[] faults;
        uint16[] bps;
        uint8 held;
    }

    /// @notice A settled result.
    struct Result {
        Status status;
        bytes32 outputDigest;
        /// @dev empty when Disputed or Expired, or when the request kept the digest only
        bytes output;
        address[] agreeing;
        uint64 settledBlock;
        uint8 errorCode;
        uint8 callbackResult;
    }

    /// @notice A request was accepted and its round opened in the mode contract.
    /// @param requestId the request
    /// @param modelId the model
    /// @param requester who pays, receives refunds and the callback
    /// @param version the model version
    /// @param mode verification mode bit
    /// @param k committee size
    /// @param input the abi-encoded input tensors
    /// @param fee total escrowed
    /// @param seedBlock the block whose hash seeds the committee draw
    /// @param deadline the last block the mode may settle in without anyone's help (after it, the
    ///        mode's own timeout path, and `expire` once EXPIRY_GRACE more blocks have passed)
    /// @param callbackGasLimit gas for the callback, zero for none
    /// @param digestOnly whether only the output digest is kept
    event RequestCreated(
        uint256 indexed requestId,
        bytes32 indexed modelId,
        address indexed requester,
        uint32 version,
        uint8 mode,
        uint8 k,
        bytes input,
        uint256 fee,
        uint40 seedBlock,
        uint40 deadline,
        uint32 callbackGasLimit,
        bool digestOnly
    );
    /// @notice A request reached a terminal status.
    /// @param requestId the request
    /// @param status the terminal status
    /// @param outputDigest the accepted digest (zero if none)
    /// @param errorCode canonical error code when Failed
    /// @param output the accepted output bytes (empty if none)
    event RequestSettled(
        uint256 indexed requestId, Status status, bytes32 outputDigest, uint8 errorCode, bytes output
    );
    /// @notice How a request's escrow was split.
    /// @param requestId the request
    /// @param perOperator paid to each paid member
    /// @param agreeing number of paid members
    /// @param modelOwner paid to the model owner
    /// @param treasury paid to the treasury
    /// @param refund returned to the requester
    event FeesDistributed(
        uint256 indexed requestId, uint256 perOperator, uint256 agreeing, uint256 modelOwner, uint256 treasury, uint256 refund
    );
    /// @notice A member lost stake.
    /// @param requestId the request
    /// @param operator the member
    /// @param fault why
    /// @param amount tokens taken (to the treasury, less a reporter's reward)
    event MemberPenalized(uint256 indexed requestId, address indexed operator, Fault fault, uint256 amount);
    /// @notice The requester's callback ran.
    /// @param requestId the request
    /// @param requester the contract called
    /// @param success false if it reverted or ran out of gas
    event CallbackExecuted(uint256 indexed requestId, address indexed requester, bool success);
    /// @notice A held operator fee was paid to a member whose agreement was shown late.
    /// @param requestId the request
    /// @param member the member paid
    /// @param amount the operator fee
    event HeldFeePaid(uint256 indexed requestId, address indexed member, uint256 amount);
    /// @notice Held operator fees nobody earned went back to the requester.
    /// @param requestId the request
    /// @param amount tokens refunded
    event HeldFeesRefunded(uint256 indexed requestId, uint256 amount);
    /// @notice Credited tokens were withdrawn.
    /// @param account whose credit was paid
    /// @param amount tokens sent to `account`
    event Claimed(address indexed account, uint256 amount);
    /// @notice Tokens were added to an account's credit.
    /// @param account whose credit grew
    /// @param from who paid the tokens
    /// @param amount tokens credited
    event Deposited(address indexed account, address indexed from, uint256 amount);
    /// @notice Parameters changed.
    /// @param params the new parameters
    event ParamsUpdated(Params params);
    /// @notice The treasury changed.
    /// @param treasury the new treasury
    event TreasuryUpdated(address indexed treasury);
    /// @notice A mode contract was registered for a mode bit (once, for good).
    /// @param mode the mode bit
    /// @param modeContract the contract that runs and settles requests of that mode
    event ModeRegistered(uint8 indexed mode, address modeContract);

    /// @notice The version does not allow the mode, or no contract is registered for it.
    error ModeNotSupported(uint8 mode);
    /// @notice The version is deprecated.
    error VersionDeprecated(bytes32 modelId, uint32 version);
    /// @notice k is zero or above maxK.
    error InvalidRedundancy(uint256 k, uint256 maxK);
    /// @notice Input is empty or larger than maxInputBytes.
    error InvalidInputSize(uint256 size, uint256 max);
    /// @notice The callback gas limit is above maxCallbackGas.
    error InvalidCallbackGasLimit(uint256 limit, uint256 max);
    /// @notice The fee exceeds the requester's cap.
    error FeeExceedsMax(uint256 fee, uint256 maxFee);
    /// @notice No request has this id.
    error UnknownRequest(uint256 requestId);
    /// @notice The request is settled already.
    error RequestNotPending(uint256 requestId, Status status);
    /// @notice Only the mode contract that runs a request may settle it.
    error NotRequestMode(uint256 requestId, address caller);
    /// @notice A mode reported an outcome the core cannot apply: a non-terminal status, more paid and
    ///         held members than k, pay, a digest or output bytes without an accepted output, output
    ///         bytes that do not hash to the digest, an error code without Failed (or Failed without
    ///         one), arrays of different lengths.
    error InvalidOutcome(uint256 requestId);
    /// @notice The request holds no operator fee back.
    error NothingHeld(uint256 requestId);
    /// @notice The mode bit is not a single bit, or a contract is registered for it already.
    error InvalidMode(uint8 mode);
    /// @notice The request's mode deadline plus EXPIRY_GRACE has not passed.
    error TooEarlyToExpire(uint256 requestId, uint256 expiresAfter);
    /// @notice Not enough gas was left to give the callback its limit.
    error InsufficientGasForCallback(uint256 available, uint256 required);
    /// @notice Nothing is credited to the account.
    error NothingToClaim(address account);
    /// @notice A deposit of nothing, or for the zero address or the hub itself.
    error InvalidDeposit();
    /// @notice The request is not settled yet.
    error ResultNotReady(uint256 requestId);
    /// @notice A parameter is out of range.
    error InvalidParams();
    /// @notice The token moved a different amount than asked (a fee-on-transfer token).
    error TransferAmountMismatch(uint256 expected, uint256 received);
    /// @notice No model has this id (raised by the registry, declared here for decoding).
    error UnknownModel(bytes32 modelId);
    /// @notice The model has no such version (raised by the registry).
    error UnknownVersion(bytes32 modelId, uint32 version);
    /// @notice Fewer eligible operators than k in the pool of the version's class (the model id for a portable version).
    error InsufficientOperators(bytes32 poolId, uint256 eligible, uint256 requested);

    /// @notice Requests an inference and escrows its fee: from the caller's credit when that covers the
    ///         whole fee, otherwise pulled from its token balance (needs allowance). The committee is drawn from
    ///         the next block's hash, so neither the requester nor anyone ordering transactions around
    ///         it can know or choose it. Results and refunds go to the caller.
    /// @param request model, version, mode, redundancy, callback gas, storage choice, fee cap, input
    /// @return requestId the new request
    function requestInference(InferenceRequest calldata request) external returns (uint256 requestId);

    /// @notice Ends a request with the outcome its mode reached: pays, penalizes, calls back.
    ///         Only the mode contract registered for the request's mode may call.
    /// @param requestId the request
    /// @param outcome status, error code, accepted digest, who is paid and who is penalized
    /// @param output the accepted output's bytes (empty when none), for the event and the callback
    function settle(uint256 requestId, Outcome calldata outcome, bytes calldata output) external;

    /// @notice Penalizes a member of a pending or settled request outside its settlement (a proof of
    ///         equivocation); part of the slashed stake goes to `reporter`. Mode contracts only.
    /// @param requestId the request
    /// @param operator the member
    /// @param fault why
    /// @param bps the slash rate
    /// @param reporter who proved the fault
    /// @param rewardBps the reporter's share of what is slashed
    /// @return amount tokens slashed
    function penalize(
        uint256 requestId,
        address operator,
        Fault fault,
        uint16 bps,
        address reporter,
        uint16 rewardBps
    ) external returns (uint256 amount);

    /// @notice Pays one held operator fee to a member whose agreement the mode has just verified.
    ///         Mode contracts only.
    /// @param requestId the request
    /// @param member the member
    function payHeld(uint256 requestId, address member) external;

    /// @notice Refunds the held operator fees nobody earned to the requester. Mode contracts only.
    /// @param requestId the request
    function releaseHeld(uint256 requestId) external;

    /// @notice The safety net: refunds a request whose mode never settled it, EXPIRY_GRACE blocks
    ///         after the mode's deadline. Anyone may call; nobody is penalized.
    /// @param requestId the request
    function expire(uint256 requestId) external;

    /// @notice Withdraws the caller's credited fees and refunds.
    /// @return amount tokens sent
    function claim() external returns (uint256 amount);

    /// @notice Pays `account` its credited tokens; anyone may call, the tokens only ever go to `account`
    ///         (so a contract without a claim function still gets its refunds).
    /// @param account whose credit to pay
    /// @return amount tokens sent
    function claimFor(address account) external returns (uint256 amount);

    /// @notice Adds `amount` of the caller's tokens (needs allowance) to `account`'s credit, which pays
    ///         `account`'s next requests without a token transfer each. Anyone may fund any account.
    /// @param account whose credit grows
    /// @param amount tokens to move in
    function deposit(address account, uint256 amount) external;

    /// @notice Tokens credited to an account (fees earned, refunds, deposits): spent first by the
    ///         account's requests, withdrawn by `claim` or `claimFor`.
    /// @param account the account
    /// @return amount tokens
    function claimable(address account) external view returns (uint256 amount);

    /// @notice The total fee a request would escrow now.
    /// @param modelId the model
    /// @param version the model version
    /// @param k committee size
    /// @return fee tokens
    function quote(bytes32 modelId, uint32 version, uint8 k) external view returns (uint256 fee);

    /// @notice The fee and staking token.
    /// @return the token
    function token() external view returns (IERC20);

    /// @notice Where protocol fees and slashed stake go.
    /// @return the treasury
    function treasury() external view returns (address);

    /// @notice The contract registered for a mode bit (zero if none).
    /// @param mode the mode bit
    /// @return the mode contract
    function modeContract(uint8 mode) external view returns (address);

    /// @notice Blocks after a mode's deadline before `expire` may refund a request the mode left open.
    /// @return blocks
    function EXPIRY_GRACE() external view returns (uint32); // solhint-disable-line func-name-mixedcase

    /// @notice Operator fees a settled request still holds for late-shown agreement.
    /// @param requestId the request
    /// @return count fees held
    function heldFees(uint256 requestId) external view returns (uint256 count);

    /// @notice A request as stored.
    /// @param requestId the request
    /// @return the request
    function getRequest(uint256 requestId) external view returns (Request memory);

    /// @notice A request's model.
    /// @param requestId the request
    /// @return modelId the model
    function modelOf(uint256 requestId) external view returns (bytes32 modelId);

    /// @notice The operator pool a request's committee is drawn from: its model's operators registered
    ///         for its version's execution class (see IOperatorStaking.poolOf).
    /// @param requestId the request
    /// @return poolId the pool
    function poolOf(uint256 requestId) external view returns (bytes32 poolId);

    /// @notice The agreement rule of a request's model version (see IModelRegistry.VersionParams).
    /// @param requestId the request
    /// @return units absolute part in units of the last decimal
    /// @return ppm relative part in millionths (both zero: exact)
    function toleranceOf(uint256 requestId) external view returns (uint32 units, uint32 ppm);

    /// @notice The settled result; reverts with ResultNotReady while pending.
    /// @param requestId the request
    /// @return the result
    function getResult(uint256 requestId) external view returns (Result memory);

    /// @notice Whether `output` is the accepted output of a Finalized or Failed request.
    /// @param requestId the request
    /// @param output candidate bytes
    /// @return true when keccak256(output) is the accepted digest
    function verifyOutput(uint256 requestId, bytes calldata output) external view returns (bool);
}
