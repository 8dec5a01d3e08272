// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IInferenceHub
/// @notice Takes inference requests, draws stake-weighted committees from a seed no party knew
///         when the request was escrowed, runs commit/reveal, settles on a strict-majority quorum,
///         pays, slashes and calls the requester back.
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
        /// never committed: the silence rate
        Silent,
        /// committed but never revealed: the dissent rate
        Withheld,
        /// revealed an output other than the accepted one: the dissent rate
        Dissent
    }

    /// @notice Deployment parameters; windows are in blocks, fractions in basis points. Every value a
    ///         request depends on (windows, fees, rates, output cap) is copied into it when it is made.
    struct Params {
        /// @dev blocks after the seed block to commit; at most 255 so the seed is readable throughout
        uint32 commitWindow;
        uint32 revealWindow;
        uint8 maxK;
        uint16 slashBpsDissent;
        uint16 slashBpsSilence;
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
    /// @param mode verification mode (MODE_CONSENSUS is the one implemented)
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

    /// @notice A request as stored (four slots, packed by hand; solhint's estimate counts otherwise).
    // solhint-disable-next-line gas-struct-packing
    struct Request {
        address requester;
        Status status;
        uint8 k;
        uint8 mode;
        uint16 committedMask;
        uint16 revealedMask;
        /// @dev the committee is drawn from this block's hash, once it exists
        uint40 seedBlock;
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint32 callbackGasLimit;
        uint24 version;
        uint32 maxOutputBytes;
        uint16 slashBpsDissent;
        uint16 slashBpsSilence;
        bool digestOnly;
        bool drawn;
        bytes32 modelId;
        uint96 modelFee;
        uint96 operatorFee;
        uint64 protocolFee;
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

    /// @notice A request was accepted; its committee is drawn once `seedBlock` exists.
    /// @param requestId the request
    /// @param modelId the model
    /// @param requester who pays, receives refunds and the callback
    /// @param version the model version
    /// @param mode verification mode
    /// @param k committee size
    /// @param input the abi-encoded input tensors
    /// @param fee total escrowed
    /// @param seedBlock the block whose hash seeds the draw
    /// @param commitDeadline last block to commit
    /// @param revealDeadline last block to reveal
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
        uint40 commitDeadline,
        uint40 revealDeadline,
        uint32 callbackGasLimit,
        bool digestOnly
    );
    /// @notice A request's committee was drawn.
    /// @param requestId the request
    /// @param committee the drawn operators, in member-index order
    event CommitteeDrawn(uint256 indexed requestId, address[] committee);
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
    /// @notice A request reached a terminal status.
    /// @param requestId the request
    /// @param status the terminal status
    /// @param outputDigest the accepted digest (zero if none)
    /// @param errorCode canonical error code when Failed
    /// @param agreeMask bitmask of agreeing member indices
    /// @param output the accepted output bytes (empty if none)
    event RequestSettled(
        uint256 indexed requestId, Status status, bytes32 outputDigest, uint8 errorCode, uint16 agreeMask, bytes output
    );
    /// @notice How a request's escrow was split.
    /// @param requestId the request
    /// @param perOperator paid to each agreeing member
    /// @param agreeing number of agreeing members
    /// @param modelOwner paid to the model owner
    /// @param treasury paid to the treasury
    /// @param refund returned to the requester
    event FeesDistributed(
        uint256 indexed requestId, uint256 perOperator, uint256 agreeing, uint256 modelOwner, uint256 treasury, uint256 refund
    );
    /// @notice A member lost stake.
    /// @param requestId the request
    /// @param operator the member
    /// @param fault silent, withheld or dissent
    /// @param amount tokens taken (all to the treasury)
    event MemberPenalized(uint256 indexed requestId, address indexed operator, Fault fault, uint256 amount);
    /// @notice The requester's callback ran.
    /// @param requestId the request
    /// @param requester the contract called
    /// @param success false if it reverted or ran out of gas
    event CallbackExecuted(uint256 indexed requestId, address indexed requester, bool success);
    /// @notice Credited tokens were withdrawn.
    /// @param account whose credit was paid
    /// @param amount tokens sent to `account`
    event Claimed(address indexed account, uint256 amount);
    /// @notice Parameters changed.
    /// @param params the new parameters
    event ParamsUpdated(Params params);
    /// @notice The treasury changed.
    /// @param treasury the new treasury
    event TreasuryUpdated(address indexed treasury);

    /// @notice The version does not allow the mode, or the hub does not implement it yet.
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
    /// @notice The seed block has not been mined yet: nobody can know the committee.
    error SeedNotReady(uint256 requestId, uint256 seedBlock);
    /// @notice The seed block is older than 256 blocks: the committee can no longer be drawn.
    error SeedUnavailable(uint256 requestId, uint256 seedBlock);
    /// @notice The caller is not on the request's committee.
    error NotCommitteeMember(uint256 requestId, address operator);
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
    /// @notice The output is longer than the request's maxOutputBytes (reveal the OUTPUT_TOO_LARGE error).
    error OutputTooLarge(uint256 requestId, uint256 size, uint256 max);
    /// @notice The request keeps only digests: settling it needs the accepted output's bytes.
    error OutputRequired(uint256 requestId, bytes32 digest);
    /// @notice The bytes given are not the accepted output.
    error OutputMismatch(uint256 requestId, bytes32 expected, bytes32 given);
    /// @notice The request cannot be finalized yet.
    error TooEarlyToFinalize(uint256 requestId);
    /// @notice The batch arrays differ in length or are empty.
    error BatchLengthMismatch();
    /// @notice Not enough gas was left to give the callback its limit.
    error InsufficientGasForCallback(uint256 available, uint256 required);
    /// @notice The data contract holding a revealed output could not be created.
    error OutputNotStored(bytes32 digest);
    /// @notice Nothing is credited to the account.
    error NothingToClaim(address account);
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
    /// @notice Fewer eligible operators than k.
    error InsufficientOperators(bytes32 modelId, uint256 eligible, uint256 requested);

    /// @notice Requests an inference; escrows the fee (needs allowance). The committee is drawn from
    ///         the next block's hash, so neither the requester nor anyone ordering transactions around
    ///         it can know or choose it. Results and refunds go to the caller.
    /// @param request model, version, mode, redundancy, callback gas, storage choice, fee cap, input
    /// @return requestId the new request
    function requestInference(InferenceRequest calldata request) external returns (uint256 requestId);

    /// @notice Draws and stores a request's committee once its seed block exists; anyone may call
    ///         (the first commit does it too).
    /// @param requestId the request
    /// @return committee the members in member-index order
    function draw(uint256 requestId) external returns (address[] memory committee);

    /// @notice Commits to an output digest without revealing it (drawing the committee if needed).
    /// @param requestId the request
    /// @param commitment keccak256(abi.encode(requestId, operator, keccak256(output), salt))
    function commit(uint256 requestId, bytes32 commitment) external;

    /// @notice Commits on many requests in one transaction; all or nothing.
    /// @param requestIds the requests
    /// @param commitments one commitment per request
    function commitMany(uint256[] calldata requestIds, bytes32[] calldata commitments) external;

    /// @notice Reveals a committed output; the last reveal settles the request.
    /// @param requestId the request
    /// @param output the abi-encoded output tensors
    /// @param salt the commitment salt
    function reveal(uint256 requestId, bytes calldata output, bytes32 salt) external;

    /// @notice Reveals on many requests in one transaction; all or nothing.
    /// @param requestIds the requests
    /// @param outputs one output per request
    /// @param salts one salt per request
    function revealMany(uint256[] calldata requestIds, bytes[] calldata outputs, bytes32[] calldata salts) external;

    /// @notice Settles a request whose windows have run out; anyone may call.
    /// @param requestId the request
    function finalize(uint256 requestId) external;

    /// @notice Settles a digest-only request, supplying the accepted output's bytes.
    /// @param requestId the request
    /// @param output bytes whose keccak256 is the accepted digest
    function finalizeWithOutput(uint256 requestId, bytes calldata output) external;

    /// @notice Withdraws the caller's credited fees and refunds.
    /// @return amount tokens sent
    function claim() external returns (uint256 amount);

    /// @notice Pays `account` its credited tokens; anyone may call, the tokens only ever go to `account`
    ///         (so a contract without a claim function still gets its refunds).
    /// @param account whose credit to pay
    /// @return amount tokens sent
    function claimFor(address account) external returns (uint256 amount);

    /// @notice Tokens credited to an account (fees earned, refunds), paid by `claim` or `claimFor`.
    /// @param account the account
    /// @return amount tokens
    function claimable(address account) external view returns (uint256 amount);

    /// @notice The total fee a request would escrow now.
    /// @param modelId the model
    /// @param version the model version
    /// @param k committee size
    /// @return fee tokens
    function quote(bytes32 modelId, uint32 version, uint8 k) external view returns (uint256 fee);

    /// @notice A request as stored.
    /// @param requestId the request
    /// @return the request
    function getRequest(uint256 requestId) external view returns (Request memory);

    /// @notice A request's committee in member-index order; empty until drawn.
    /// @param requestId the request
    /// @return committee members
    function getCommittee(uint256 requestId) external view returns (address[] memory);

    /// @notice The committee a request has or will have: the stored one, or the draw its seed gives
    ///         now. Reverts SeedNotReady before the seed block exists.
    /// @param requestId the request
    /// @return committee members
    function previewCommittee(uint256 requestId) external view returns (address[] memory);

    /// @notice The settled result; reverts with ResultNotReady while pending.
    /// @param requestId the request
    /// @return the result
    function getResult(uint256 requestId) external view returns (Result memory);

    /// @notice Whether `output` is the accepted output of a Finalized or Failed request.
    /// @param requestId the request
    /// @param output candidate bytes
    /// @return true when keccak256(output) is the accepted digest
    function verifyOutput(uint256 requestId, bytes calldata output) external view returns (bool);

    /// @notice Whether finalize() would be allowed now (a digest-only request may still need
    ///         finalizeWithOutput).
    /// @param requestId the request
    /// @return true when the request can be settled
    function canFinalize(uint256 requestId) external view returns (bool);
}
