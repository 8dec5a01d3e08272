// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IOperatorStaking
/// @notice Operator stake, unbonding queue, slashing and jailing, and the stake-weighted
///         committee draw over the operators registered for a model and execution class.
/// @dev A pool is a model and an execution class (`poolOf`): a version with a class draws only from
///      operators who registered for that class of the model, a portable version (class zero) from
///      those registered without one. An operator declares each class it serves by registering for it.
/// @dev Every change to who can be drawn (stake, unbonding, joining or leaving a pool, jail) takes
///      effect for draws from the next epoch on: a draw reads the pools as they stood at the end of
///      the epoch before its seed block, so no weight chosen after a seed was knowable counts.
interface IOperatorStaking {
    /// @notice An operator's stake and standing.
    struct OperatorInfo {
        uint128 stake;
        uint128 unbonding;
        /// @dev faults after decay, as of now
        uint32 faults;
        bool jailed;
        /// @dev block from which `unjail` is allowed (when jailed)
        uint40 jailedUntil;
        uint256 modelCount;
    }

    /// @notice A pool an operator is in: a model and an execution class (zero: portable).
    struct Registration {
        bytes32 modelId;
        bytes32 classId;
    }

    /// @notice A pending withdrawal.
    struct Unbonding {
        uint128 amount;
        /// @dev block number from which it can be withdrawn
        uint64 releaseAt;
    }

    /// @notice Stake was added.
    /// @param operator the operator
    /// @param amount tokens added
    /// @param stake the operator's active stake afterwards
    event Staked(address indexed operator, uint256 amount, uint256 stake);
    /// @notice Stake entered the unbonding queue.
    /// @param operator the operator
    /// @param amount tokens unbonding
    /// @param releaseAt block from which they can be withdrawn
    event UnbondingRequested(address indexed operator, uint256 amount, uint64 releaseAt);
    /// @notice Matured unbonding stake was withdrawn.
    /// @param operator the operator
    /// @param amount tokens withdrawn
    event Withdrawn(address indexed operator, uint256 amount);
    /// @notice The operator joined a model's pool for one execution class.
    /// @param operator the operator
    /// @param modelId the model
    /// @param classId the execution class (zero: portable versions)
    event ModelJoined(address indexed operator, bytes32 indexed modelId, bytes32 indexed classId);
    /// @notice The operator left a model's pool for one execution class.
    /// @param operator the operator
    /// @param modelId the model
    /// @param classId the execution class (zero: portable versions)
    event ModelLeft(address indexed operator, bytes32 indexed modelId, bytes32 indexed classId);
    /// @notice Stake was slashed.
    /// @param operator the operator
    /// @param amount tokens taken from active and unbonding stake
    /// @param reward part paid to `rewardRecipient`
    /// @param rewardRecipient who proved the fault (zero: none)
    /// @param faults the operator's fault count afterwards
    event Slashed(address indexed operator, uint256 amount, uint256 reward, address indexed rewardRecipient, uint32 faults);
    /// @notice The operator was jailed: not drawn from the next epoch on, and cannot unjail before `until`.
    /// @param operator the operator
    /// @param faults its fault count
    /// @param until first block at which it may unjail
    event Jailed(address indexed operator, uint32 faults, uint40 until);
    /// @notice The operator left jail.
    /// @param operator the operator
    event Unjailed(address indexed operator);
    /// @notice The unbonding period changed.
    /// @param unbondingPeriod blocks
    event UnbondingPeriodUpdated(uint64 unbondingPeriod);
    /// @notice The jail rules changed.
    /// @param jailThreshold faults that jail
    /// @param jailPeriod blocks in jail before unjailing is allowed
    /// @param faultDecay blocks after which one fault is forgiven
    event JailRulesUpdated(uint32 jailThreshold, uint32 jailPeriod, uint32 faultDecay);
    /// @notice The treasury changed.
    /// @param treasury the new treasury
    event TreasuryUpdated(address indexed treasury);

    /// @notice The admin listed or delisted an execution class.
    /// @param classId keccak256 of `machine`
    /// @param machine the class's machine part (`runtime==version/cpu-class`)
    /// @param allowed whether operators may register for it
    event ClassAllowed(bytes32 indexed classId, string machine, bool allowed);

    /// @notice An operator published (or, with an empty URL, withdrew) the endpoint its peers reach it at.
    /// @param operator the operator
    /// @param url an http(s) URL, or empty
    event EndpointSet(address indexed operator, string url);

    /// @notice The amount is zero or too large.
    error InvalidAmount(uint256 amount);
    /// @notice An endpoint must be empty or an http:// or https:// URL of at most 256 bytes.
    error InvalidEndpoint();
    /// @notice Only an operator with stake may publish an endpoint.
    error NotStaked(address operator);
    /// @notice The operator's active stake is below the amount asked for.
    error InsufficientStake(uint256 requested, uint256 available);
    /// @notice The operator has too many pending unbondings.
    error TooManyUnbondings(uint256 max);
    /// @notice No unbonding entry has matured.
    error NothingToWithdraw();
    /// @notice The model is not in the registry.
    error UnknownModel(bytes32 modelId);
    /// @notice The class is not listed (`setClassAllowed`): nobody may register for it.
    error ClassNotAllowed(bytes32 classId);
    /// @notice The operator is in that model's pool for that class already.
    error AlreadyRegistered(address operator, bytes32 modelId, bytes32 classId);
    /// @notice The operator is not in that model's pool for that class.
    error NotRegistered(address operator, bytes32 modelId, bytes32 classId);
    /// @notice The operator is in the maximum number of pools (a model counts once per class).
    error TooManyModels(uint256 max);
    /// @notice The operator is not jailed.
    error NotJailed(address operator);
    /// @notice The operator's jail period has not ended.
    error JailPeriodNotOver(address operator, uint256 until);
    /// @notice Fewer eligible operators in the pool than the committee size.
    error InsufficientOperators(bytes32 poolId, uint256 eligible, uint256 requested);
    /// @notice The committee size is zero or above the maximum.
    error InvalidCommitteeSize(uint256 k);
    /// @notice A basis-point value is above 10000.
    error InvalidBps(uint256 bps);
    /// @notice A configuration value is out of range.
    error InvalidParameter();
    /// @notice The unbonding period can only be lengthened: slashers checked their windows against it.
    error UnbondingPeriodTooShort(uint64 period, uint64 current);
    /// @notice The token moved a different amount than asked (a fee-on-transfer token).
    error TransferAmountMismatch(uint256 expected, uint256 received);

    /// @notice Adds stake from the caller's token balance (needs allowance).
    /// @param amount tokens to stake
    function stake(uint256 amount) external;

    /// @notice Moves active stake into the unbonding queue; it stays slashable until withdrawn.
    /// @param amount tokens to unbond
    function requestUnbond(uint256 amount) external;

    /// @notice Withdraws every matured unbonding entry.
    /// @return amount tokens sent to the caller
    function withdraw() external returns (uint256 amount);

    /// @notice Joins a model's pool for one execution class, so the caller can be drawn for requests to
    ///         the model's versions of that class (from the next epoch). The class is the caller's word
    ///         that its machine computes that class's bits; its relayer checks the machine first.
    /// @param modelId the model
    /// @param classId keccak256 of the machine part of the class (`runtime==version/cpu-class`), listed by
    ///        the admin, or zero for the model's portable versions
    function register(bytes32 modelId, bytes32 classId) external;

    /// @notice Publishes where the caller's relayer takes messages from its committee peers (attested
    ///         mode exchanges signatures there); an empty URL withdraws it. Requires stake.
    /// @param url an http:// or https:// URL of at most 256 bytes, or empty
    function setEndpoint(string calldata url) external;

    /// @notice Leaves a model's pool for one class (drawn no more from the next epoch).
    /// @param modelId the model
    /// @param classId the class registered for (zero: portable)
    function deregister(bytes32 modelId, bytes32 classId) external;

    /// @notice Leaves jail once the jail period is over and stake is back at the minimum. Faults
    ///         are kept (they decay with time), so the next fault may jail again.
    function unjail() external;

    /// @notice Takes `bps` of an operator's active and unbonding stake (slasher role only).
    /// @param operator the faulty operator
    /// @param bps fraction to take, in basis points
    /// @param rewardRecipient receives `rewardBps` of what was taken; the rest goes to the treasury
    /// @param rewardBps the prover's share, in basis points
    /// @return slashed tokens taken
    function slash(address operator, uint16 bps, address rewardRecipient, uint16 rewardBps)
        external
        returns (uint256 slashed);

    /// @notice Draws `k` distinct operators of a pool, weighted by stake, from the pool as it stood
    ///         at the end of the epoch before `seedBlock`'s.
    /// @param poolId the pool (`poolOf(model, class)`)
    /// @param k committee size
    /// @param seed randomness (derived from `seedBlock`'s hash)
    /// @param seedBlock the block the seed comes from
    /// @return committee the drawn operators
    function drawCommittee(bytes32 poolId, uint256 k, uint256 seed, uint256 seedBlock)
        external
        view
        returns (address[] memory committee);

    /// @notice `drawCommittee` with each member's slot in the pool. A slot never changes hands,
    ///         so a mode can keep a committee as its slots (four bytes a member) and read it back with
    ///         `membersAt`.
    /// @param poolId the pool
    /// @param k committee size
    /// @param seed randomness (derived from `seedBlock`'s hash)
    /// @param seedBlock the block the seed comes from
    /// @return committee the drawn operators
    /// @return slots their slots in the pool, in the same order
    function drawCommitteeSlots(bytes32 poolId, uint256 k, uint256 seed, uint256 seedBlock)
        external
        view
        returns (address[] memory committee, uint256[] memory slots);

    /// @notice The operators holding `slots` in a pool (the zero address for a slot never used).
    /// @param poolId the pool
    /// @param slots pool slots
    /// @return members one operator per slot
    function membersAt(bytes32 poolId, uint256[] calldata slots) external view returns (address[] memory members);

    /// @notice How many operators a draw seeded at `seedBlock` chooses from (those with weight at
    ///         the end of the epoch before its own; the pool as written last if that epoch has not ended).
    /// @param poolId the pool
    /// @param seedBlock the seed block
    /// @return eligible operators with weight
    function eligibleAt(bytes32 poolId, uint256 seedBlock) external view returns (uint256 eligible);

    /// @notice Whether operators may register for a class (zero, portable, is always allowed).
    /// @param classId the class id
    /// @return allowed listed by the admin
    function classAllowed(bytes32 classId) external view returns (bool allowed);

    /// @notice The pool of a model's versions of one execution class: the model id itself for portable
    ///         versions (class zero), else keccak256(abi.encode(modelId, classId)).
    /// @param modelId the model
    /// @param classId the class (zero: portable)
    /// @return the pool id
    function poolOf(bytes32 modelId, bytes32 classId) external pure returns (bytes32);

    /// @notice The epoch a block belongs to (epochs count from 1).
    /// @param blockNumber the block
    /// @return the epoch
    function epochOf(uint256 blockNumber) external view returns (uint256);

    /// @notice Blocks per epoch.
    /// @return blocks
    function epochBlocks() external view returns (uint256);

    /// @notice Blocks from an unbonding request to its withdrawal.
    /// @return blocks
    function unbondingPeriod() external view returns (uint64);

    /// @notice An operator's stake and standing.
    /// @param operator the operator
    /// @return the operator's record
    function operatorInfo(address operator) external view returns (OperatorInfo memory);

    /// @notice The pools an operator is registered for: model and class of each.
    /// @param operator the operator
    /// @return registrations one per pool, in no particular order
    function registrationsOf(address operator) external view returns (Registration[] memory registrations);

    /// @notice The endpoint an operator published (empty if none).
    /// @param operator the operator
    /// @return url the URL
    function endpointOf(address operator) external view returns (string memory url);

    /// @notice An operator's pending unbonding entries, oldest first.
    /// @param operator the operator
    /// @return pending entries
    function unbondingsOf(address operator) external view returns (Unbonding[] memory);

    /// @notice A pool's size as written last (drawn from the next epoch on).
    /// @param poolId the pool
    /// @return slots members ever joined
    /// @return eligible members with weight
    /// @return totalWeight sum of weights
    function poolInfo(bytes32 poolId) external view returns (uint256 slots, uint256 eligible, uint256 totalWeight);

    /// @notice An operator's weight in a pool as written last.
    /// @param operator the operator
    /// @param poolId the pool
    /// @return weight its stake if eligible, else zero
    function weightOf(address operator, bytes32 poolId) external view returns (uint256 weight);
}
