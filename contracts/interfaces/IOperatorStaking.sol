// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IOperatorStaking
/// @notice Operator stake, unbonding queue, slashing and jailing, and the stake-weighted
///         committee draw over the operators registered for a model.
interface IOperatorStaking {
    /// @notice An operator's stake and standing.
    struct OperatorInfo {
        uint128 stake;
        uint128 unbonding;
        uint32 faults;
        bool jailed;
        uint256 modelCount;
    }

    /// @notice A pending withdrawal.
    struct Unbonding {
        uint128 amount;
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
    /// @param releaseAt timestamp from which they can be withdrawn
    event UnbondingRequested(address indexed operator, uint256 amount, uint64 releaseAt);
    /// @notice Matured unbonding stake was withdrawn.
    /// @param operator the operator
    /// @param amount tokens withdrawn
    event Withdrawn(address indexed operator, uint256 amount);
    /// @notice The operator joined a model's pool.
    /// @param operator the operator
    /// @param modelId the model
    event ModelJoined(address indexed operator, bytes32 indexed modelId);
    /// @notice The operator left a model's pool.
    /// @param operator the operator
    /// @param modelId the model
    event ModelLeft(address indexed operator, bytes32 indexed modelId);
    /// @notice Stake was slashed.
    /// @param operator the operator
    /// @param amount tokens taken from active and unbonding stake
    /// @param reward part paid to `rewardRecipient`
    /// @param rewardRecipient who proved the fault
    /// @param faults the operator's fault count afterwards
    event Slashed(address indexed operator, uint256 amount, uint256 reward, address indexed rewardRecipient, uint32 faults);
    /// @notice The operator was jailed: not selectable until it unjails.
    /// @param operator the operator
    /// @param faults its fault count
    event Jailed(address indexed operator, uint32 faults);
    /// @notice The operator left jail.
    /// @param operator the operator
    event Unjailed(address indexed operator);
    /// @notice The unbonding period changed.
    /// @param unbondingPeriod seconds
    event UnbondingPeriodUpdated(uint64 unbondingPeriod);
    /// @notice The fault count that jails changed.
    /// @param jailThreshold faults
    event JailThresholdUpdated(uint32 jailThreshold);
    /// @notice The treasury changed.
    /// @param treasury the new treasury
    event TreasuryUpdated(address indexed treasury);

    /// @notice The amount is zero or too large.
    error InvalidAmount(uint256 amount);
    /// @notice The operator's active stake is below the amount asked for.
    error InsufficientStake(uint256 requested, uint256 available);
    /// @notice The operator has too many pending unbondings.
    error TooManyUnbondings(uint256 max);
    /// @notice No unbonding entry has matured.
    error NothingToWithdraw();
    /// @notice The model is not in the registry.
    error UnknownModel(bytes32 modelId);
    /// @notice The operator is in that model's pool already.
    error AlreadyRegistered(address operator, bytes32 modelId);
    /// @notice The operator is not in that model's pool.
    error NotRegistered(address operator, bytes32 modelId);
    /// @notice The operator is in the maximum number of pools.
    error TooManyModels(uint256 max);
    /// @notice The operator is not jailed.
    error NotJailed(address operator);
    /// @notice Fewer eligible operators than the committee size.
    error InsufficientOperators(bytes32 modelId, uint256 eligible, uint256 requested);
    /// @notice The committee size is zero or above the maximum.
    error InvalidCommitteeSize(uint256 k);
    /// @notice A basis-point value is above 10000.
    error InvalidBps(uint256 bps);
    /// @notice A configuration value is out of range.
    error InvalidParameter();

    /// @notice Adds stake from the caller's token balance (needs allowance).
    /// @param amount tokens to stake
    function stake(uint256 amount) external;

    /// @notice Moves active stake into the unbonding queue; it stays slashable until withdrawn.
    /// @param amount tokens to unbond
    function requestUnbond(uint256 amount) external;

    /// @notice Withdraws every matured unbonding entry.
    /// @return amount tokens sent to the caller
    function withdraw() external returns (uint256 amount);

    /// @notice Joins a model's pool so the caller can be drawn for its requests.
    /// @param modelId the model
    function register(bytes32 modelId) external;

    /// @notice Leaves a model's pool.
    /// @param modelId the model
    function deregister(bytes32 modelId) external;

    /// @notice Leaves jail once stake is back at the minimum; resets the fault count.
    function unjail() external;

    /// @notice Takes `bps` of an operator's active and unbonding stake (slasher role only).
    /// @param operator the faulty operator
    /// @param bps fraction to take, in basis points
    /// @param rewardRecipient receives `rewardBps` of what was taken; the rest goes to the treasury
    /// @param rewardBps the prover's share, in basis points
    /// @return slashed tokens taken
    function slash(address operator, uint16 bps, address rewardRecipient, uint16 rewardBps) external returns (uint256 slashed);

    /// @notice Draws `k` distinct eligible operators of a model, weighted by stake.
    /// @param modelId the model
    /// @param k committee size
    /// @param seed randomness
    /// @return committee the drawn operators
    function drawCommittee(bytes32 modelId, uint256 k, uint256 seed) external view returns (address[] memory committee);

    /// @notice An operator's stake and standing.
    /// @param operator the operator
    /// @return the operator's record
    function operatorInfo(address operator) external view returns (OperatorInfo memory);

    /// @notice The models an operator is registered for.
    /// @param operator the operator
    /// @return model ids
    function modelsOf(address operator) external view returns (bytes32[] memory);

    /// @notice An operator's pending unbondings, oldest first.
    /// @param operator the operator
    /// @return entries pending
    function unbondingsOf(address operator) external view returns (Unbonding[] memory);

    /// @notice A model pool's size, eligible operators and total weight.
    /// @param modelId the model
    /// @return slots operators ever registered
    /// @return eligible operators that can be drawn now
    /// @return totalWeight sum of eligible stake
    function poolInfo(bytes32 modelId) external view returns (uint256 slots, uint256 eligible, uint256 totalWeight);

    /// @notice The weight an operator has in a model's pool now (zero if not eligible).
    /// @param operator the operator
    /// @param modelId the model
    /// @return weight its stake if eligible, else zero
    function weightOf(address operator, bytes32 modelId) external view returns (uint256 weight);
}
