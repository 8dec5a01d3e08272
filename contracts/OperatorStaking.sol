// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IOperatorStaking} from "./interfaces/IOperatorStaking.sol";
import {Pools} from "./libraries/Pools.sol";
import {StakeTree} from "./libraries/StakeTree.sol";

/// @title OperatorStaking
/// @notice Operators stake the staking token, join model pools and leave through an unbonding
///         queue. Only holders of SLASHER_ROLE (the hub) slash; unbonding stake stays slashable.
///         Operators whose faults reach the jail threshold are jailed for a cooling-off period;
///         faults decay with time. Pools change draws only from the next epoch (see the interface).
contract OperatorStaking is IOperatorStaking, AccessControl {
    using SafeERC20 for IERC20;
    using StakeTree for StakeTree.Tree;

    /// @notice Role allowed to slash: the inference hub.
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    /// @notice Most model pools one operator may join; bounds the cost of a stake change.
    uint256 public constant MAX_MODELS_PER_OPERATOR = 8;
    /// @notice Longest endpoint URL.
    uint256 public constant MAX_ENDPOINT_BYTES = 256;
    /// @notice Most pending unbonding entries per operator; bounds withdraw and slash loops.
    uint256 public constant MAX_UNBONDINGS = 16;
    /// @notice Largest committee the draw serves.
    uint256 public constant MAX_COMMITTEE = 16;
    /// @notice Shortest epoch: a seed is readable for 256 blocks, and the pool history must reach back
    ///         that far within EpochHistory's ring.
    uint256 public constant MIN_EPOCH_BLOCKS = 8;
    uint256 private constant BPS = 10_000;

    /// @notice Deployment settings.
    /// @param minStake least active stake to be drawn or to unjail
    /// @param epochBlocks blocks per epoch: pool changes reach draws from the next epoch
    /// @param unbondingPeriod blocks from an unbonding request to its withdrawal
    /// @param jailThreshold faults that jail
    /// @param jailPeriod blocks in jail before unjailing is allowed
    /// @param faultDecay blocks after which one fault is forgiven
    struct Settings {
        uint256 minStake;
        uint32 epochBlocks;
        uint64 unbondingPeriod;
        uint32 jailThreshold;
        uint32 jailPeriod;
        uint32 faultDecay;
    }

    /// @notice The staking token.
    IERC20 public immutable token;
    /// @notice The model registry pools are checked against.
    IModelRegistry public immutable registry;
    /// @notice Least active stake an operator needs to be drawn or to unjail.
    uint256 public immutable minStake;
    /// @notice Blocks per epoch.
    uint256 public immutable epochBlocks;
    /// @notice Blocks between an unbonding request and its withdrawal.
    uint64 public unbondingPeriod;
    /// @notice Fault count at which an operator is jailed.
    uint32 public jailThreshold;
    /// @notice Blocks an operator stays jailed before it may unjail.
    uint32 public jailPeriod;
    /// @notice Blocks after which one fault is forgiven.
    uint32 public faultDecay;
    /// @notice Receives slashed stake not paid out as a reward.
    address public treasury;

    struct OperatorState {
        uint128 stake;
        uint128 unbonding;
        uint32 faults;
        uint40 lastFault;
        uint40 jailedUntil;
        bool jailed;
    }

    mapping(address operator => OperatorState) private _operators;
    mapping(address operator => Unbonding[]) private _queue;
    mapping(address operator => uint256) private _queueHead;
    /// @dev the pools an operator is in (see `poolOf`), which a change of weight updates
    mapping(address operator => bytes32[]) private _poolsOf;
    /// @dev the model and class a pool was created for (pool ids are hashes)
    mapping(bytes32 poolId => Registration) private _poolKey;
    mapping(bytes32 poolId => StakeTree.Tree) private _pools;
    mapping(bytes32 poolId => mapping(address operator => uint32 slot)) private _slotOf;
    mapping(bytes32 poolId => mapping(address operator => bool)) private _registered;
    mapping(address operator => string) private _endpoints;
    /// @inheritdoc IOperatorStaking
    mapping(bytes32 classId => bool) public classAllowed;

    /// @param token_ staking token
    /// @param registry_ model registry
    /// @param settings minimum stake, epoch length, unbonding period and jail rules
    /// @param treasury_ receives slashed stake
    /// @param admin holder of DEFAULT_ADMIN_ROLE
    constructor(IERC20 token_, IModelRegistry registry_, Settings memory settings, address treasury_, address admin) {
        if (address(token_) == address(0) || address(registry_) == address(0) || settings.minStake == 0) {
            revert InvalidParameter();
        }
        if (settings.epochBlocks < MIN_EPOCH_BLOCKS || settings.unbondingPeriod == 0) revert InvalidParameter();
        if (treasury_ == address(0) || admin == address(0)) revert InvalidParameter();
        token = token_;
        registry = registry_;
        minStake = settings.minStake;
        epochBlocks = settings.epochBlocks;
        unbondingPeriod = settings.unbondingPeriod;
        _setJailRules(settings.jailThreshold, settings.jailPeriod, settings.faultDecay);
        treasury = treasury_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ------------------------------------------------------------------ stake

    /// @inheritdoc IOperatorStaking
    function stake(uint256 amount) external {
        OperatorState storage op = _operators[msg.sender];
        if (amount == 0 || amount > type(uint128).max - op.stake - op.unbonding) revert InvalidAmount(amount);
        op.stake += uint128(amount);
        _refreshWeight(msg.sender);
        emit Staked(msg.sender, amount, op.stake);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert TransferAmountMismatch(amount, received);
    }

    /// @inheritdoc IOperatorStaking
    function requestUnbond(uint256 amount) external {
        OperatorState storage op = _operators[msg.sender];
        if (amount == 0) revert InvalidAmount(amount);
        if (amount > op.stake) revert InsufficientStake(amount, op.stake);
        if (_queue[msg.sender].length - _queueHead[msg.sender] >= MAX_UNBONDINGS) revert TooManyUnbondings(MAX_UNBONDINGS);
        uint64 releaseAt = uint64(block.number) + unbondingPeriod;
        op.stake -= uint128(amount);
        op.unbonding += uint128(amount);
        _queue[msg.sender].push(Unbonding({amount: uint128(amount), releaseAt: releaseAt}));
        _refreshWeight(msg.sender);
        emit UnbondingRequested(msg.sender, amount, releaseAt);
    }

    /// @inheritdoc IOperatorStaking
    function withdraw() external returns (uint256 amount) {
        Unbonding[] storage queue = _queue[msg.sender];
        uint256 head = _queueHead[msg.sender];
        while (head < queue.length && queue[head].releaseAt <= block.number) {
            amount += queue[head].amount;
            delete queue[head];
            ++head;
        }
        if (amount == 0) revert NothingToWithdraw();
        _queueHead[msg.sender] = head;
        _operators[msg.sender].unbonding -= uint128(amount);
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ pools

    /// @inheritdoc IOperatorStaking
    function register(bytes32 modelId, bytes32 classId) external {
        if (!registry.exists(modelId)) revert UnknownModel(modelId);
        if (classId != bytes32(0) && !classAllowed[classId]) revert ClassNotAllowed(classId);
        bytes32 poolId = poolOf(modelId, classId);
        if (_registered[poolId][msg.sender]) revert AlreadyRegistered(msg.sender, modelId, classId);
        bytes32[] storage pools = _poolsOf[msg.sender];
        if (pools.length >= MAX_MODELS_PER_OPERATOR) revert TooManyModels(MAX_MODELS_PER_OPERATOR);
        StakeTree.Tree storage pool = _pools[poolId];
        uint32 slot = _slotOf[poolId][msg.sender];
        if (slot == 0) {
            if (pool.latestMeta().size == 0) _poolKey[poolId] = Registration(modelId, classId);
            slot = pool.append(msg.sender, _epoch());
            _slotOf[poolId][msg.sender] = slot;
        }
        _registered[poolId][msg.sender] = true;
        pools.push(poolId);
        pool.set(slot, _weight(_operators[msg.sender]), _epoch());
        emit ModelJoined(msg.sender, modelId, classId);
    }

    /// @inheritdoc IOperatorStaking
    function deregister(bytes32 modelId, bytes32 classId) external {
        bytes32 poolId = poolOf(modelId, classId);
        if (!_registered[poolId][msg.sender]) revert NotRegistered(msg.sender, modelId, classId);
        _registered[poolId][msg.sender] = false;
        _pools[poolId].set(_slotOf[poolId][msg.sender], 0, _epoch());
        bytes32[] storage pools = _poolsOf[msg.sender];
        uint256 last = pools.length - 1;
        for (uint256 i = 0; i <= last; ++i) {
            if (pools[i] == poolId) {
                pools[i] = pools[last];
                pools.pop();
                break;
            }
        }
        emit ModelLeft(msg.sender, modelId, classId);
    }

    // ------------------------------------------------------------------ faults

    /// @inheritdoc IOperatorStaking
    function setEndpoint(string calldata url) external {
        if (_operators[msg.sender].stake == 0) revert NotStaked(msg.sender);
        bytes calldata b = bytes(url);
        if (b.length != 0 && (b.length > MAX_ENDPOINT_BYTES || !_isHttpUrl(b))) revert InvalidEndpoint();
        _endpoints[msg.sender] = url;
        emit EndpointSet(msg.sender, url);
    }

    /// @inheritdoc IOperatorStaking
    function unjail() external {
        OperatorState storage op = _operators[msg.sender];
        if (!op.jailed) revert NotJailed(msg.sender);
        if (block.number < op.jailedUntil) revert JailPeriodNotOver(msg.sender, op.jailedUntil);
        if (op.stake < minStake) revert InsufficientStake(minStake, op.stake);
        op.jailed = false;
        _refreshWeight(msg.sender);
        emit Unjailed(msg.sender);
    }

    /// @inheritdoc IOperatorStaking
    function slash(address operator, uint16 bps, address rewardRecipient, uint16 rewardBps)
        external
        onlyRole(SLASHER_ROLE)
        returns (uint256 slashed)
    {
        if (bps > BPS) revert InvalidBps(bps);
        if (rewardBps > BPS) revert InvalidBps(rewardBps);
        OperatorState storage op = _operators[operator];
        uint128 fromStake = uint128((uint256(op.stake) * bps) / BPS);
        op.stake -= fromStake;
        uint128 fromUnbonding = _slashUnbonding(operator, bps);
        op.unbonding -= fromUnbonding;
        slashed = uint256(fromStake) + fromUnbonding;
        uint32 faults = _decayedFaults(op) + 1;
        op.faults = faults;
        op.lastFault = uint40(block.number);
        if (!op.jailed && faults >= jailThreshold) {
            op.jailed = true;
            op.jailedUntil = uint40(block.number + jailPeriod);
            emit Jailed(operator, faults, op.jailedUntil);
        }
        _refreshWeight(operator);
        uint256 reward = rewardRecipient == address(0) ? 0 : (slashed * rewardBps) / BPS;
        emit Slashed(operator, slashed, reward, rewardRecipient, faults);
        if (reward != 0) token.safeTransfer(rewardRecipient, reward);
        if (slashed - reward != 0) token.safeTransfer(treasury, slashed - reward);
    }

    // ------------------------------------------------------------------ draw

    /// @inheritdoc IOperatorStaking
    function drawCommittee(bytes32 poolId, uint256 k, uint256 seed, uint256 seedBlock)
        external
        view
        returns (address[] memory committee)
    {
        (committee,) = _drawFrom(poolId, k, seed, seedBlock);
    }

    /// @inheritdoc IOperatorStaking
    function drawCommitteeSlots(bytes32 poolId, uint256 k, uint256 seed, uint256 seedBlock)
        external
        view
        returns (address[] memory committee, uint256[] memory slots)
    {
        return _drawFrom(poolId, k, seed, seedBlock);
    }

    /// @inheritdoc IOperatorStaking
    function membersAt(bytes32 poolId, uint256[] calldata slots) external view returns (address[] memory members) {
        StakeTree.Tree storage pool = _pools[poolId];
        members = new address[](slots.length);
        for (uint256 i = 0; i < slots.length; ++i) {
            members[i] = pool.memberAt(slots[i]);
        }
    }

    /// @inheritdoc IOperatorStaking
    function eligibleAt(bytes32 poolId, uint256 seedBlock) external view returns (uint256) {
        return _pools[poolId].metaAt(_drawEpoch(seedBlock)).eligible;
    }

    /// @inheritdoc IOperatorStaking
    function poolOf(bytes32 modelId, bytes32 classId) public pure returns (bytes32) {
        return Pools.id(modelId, classId);
    }

    /// @inheritdoc IOperatorStaking
    function epochOf(uint256 blockNumber) public view returns (uint256) {
        return blockNumber / epochBlocks + 1;
    }

    // ------------------------------------------------------------------ admin

    /// @notice Lists (or delists) an execution class operators may register for. A model owner can only
    ///         get a committee for a class that is listed, so nobody can invent a class and fill its pool
    ///         with their own operators; delisting stops new registrations, existing ones keep serving.
    /// @param machine the machine part of the class, such as `onnxruntime==1.32.0/x86-64-fma3`
    /// @param allowed whether operators may register for it
    function setClassAllowed(string calldata machine, bool allowed) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (bytes(machine).length == 0) revert InvalidParameter();
        bytes32 classId = keccak256(bytes(machine));
        classAllowed[classId] = allowed;
        emit ClassAllowed(classId, machine, allowed);
    }

    /// @notice Lengthens the unbonding period for future unbonding requests. It never shortens:
    ///         slashers checked that their requests settle within it.
    /// @param period blocks
    function setUnbondingPeriod(uint64 period) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (period < unbondingPeriod) revert UnbondingPeriodTooShort(period, unbondingPeriod);
        unbondingPeriod = period;
        emit UnbondingPeriodUpdated(period);
    }

    /// @notice Sets the jail rules; they apply from the next fault or unjail.
    /// @param threshold faults that jail, at least 1
    /// @param period blocks in jail before unjailing is allowed
    /// @param decay blocks after which one fault is forgiven, at least 1
    function setJailRules(uint32 threshold, uint32 period, uint32 decay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setJailRules(threshold, period, decay);
    }

    /// @notice Sets the treasury that receives slashed stake.
    /// @param treasury_ the new treasury
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert InvalidParameter();
        treasury = treasury_;
        emit TreasuryUpdated(treasury_);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IOperatorStaking
    function operatorInfo(address operator) external view returns (OperatorInfo memory) {
        OperatorState storage op = _operators[operator];
        return OperatorInfo({
            stake: op.stake,
            unbonding: op.unbonding,
            faults: _decayedFaults(op),
            jailed: op.jailed,
            jailedUntil: op.jailedUntil,
            modelCount: _poolsOf[operator].length
        });
    }

    /// @inheritdoc IOperatorStaking
    function endpointOf(address operator) external view returns (string memory) {
        return _endpoints[operator];
    }

    /// @inheritdoc IOperatorStaking
    function registrationsOf(address operator) external view returns (Registration[] memory registrations) {
        bytes32[] storage pools = _poolsOf[operator];
        registrations = new Registration[](pools.length);
        for (uint256 i = 0; i < pools.length; ++i) {
            registrations[i] = _poolKey[pools[i]];
        }
    }

    /// @inheritdoc IOperatorStaking
    function unbondingsOf(address operator) external view returns (Unbonding[] memory pending) {
        Unbonding[] storage queue = _queue[operator];
        uint256 head = _queueHead[operator];
        pending = new Unbonding[](queue.length - head);
        for (uint256 i = head; i < queue.length; ++i) pending[i - head] = queue[i];
    }

    /// @inheritdoc IOperatorStaking
    function poolInfo(bytes32 poolId) external view returns (uint256 slots, uint256 eligible, uint256 totalWeight) {
        StakeTree.Meta memory meta = _pools[poolId].latestMeta();
        return (meta.size, meta.eligible, meta.total);
    }

    /// @inheritdoc IOperatorStaking
    function weightOf(address operator, bytes32 poolId) external view returns (uint256) {
        uint32 slot = _slotOf[poolId][operator];
        return slot == 0 ? 0 : _pools[poolId].weightOf(slot);
    }

    // ------------------------------------------------------------------ internals

    function _drawFrom(bytes32 poolId, uint256 k, uint256 seed, uint256 seedBlock)
        private
        view
        returns (address[] memory, uint256[] memory)
    {
        if (k == 0 || k > MAX_COMMITTEE) revert InvalidCommitteeSize(k);
        StakeTree.Tree storage pool = _pools[poolId];
        uint256 epoch = _drawEpoch(seedBlock);
        uint256 eligible = pool.metaAt(epoch).eligible;
        if (eligible < k) revert InsufficientOperators(poolId, eligible, k);
        return pool.draw(k, seed, epoch);
    }

    function _weight(OperatorState storage op) private view returns (uint256) {
        return (!op.jailed && op.stake >= minStake) ? op.stake : 0;
    }

    function _refreshWeight(address operator) private {
        bytes32[] storage pools = _poolsOf[operator];
        uint256 weight = _weight(_operators[operator]);
        uint256 epoch = _epoch();
        for (uint256 i = 0; i < pools.length; ++i) {
            bytes32 poolId = pools[i];
            _pools[poolId].set(_slotOf[poolId][operator], weight, epoch);
        }
    }

    function _epoch() private view returns (uint256) {
        return block.number / epochBlocks + 1;
    }

    /// @dev A draw seeded at `seedBlock` reads the pools at the end of the epoch before the seed's.
    function _drawEpoch(uint256 seedBlock) private view returns (uint256) {
        return seedBlock / epochBlocks;
    }

    function _decayedFaults(OperatorState storage op) private view returns (uint32) {
        uint256 forgiven = (block.number - op.lastFault) / faultDecay;
        return forgiven >= op.faults ? 0 : op.faults - uint32(forgiven);
    }

    function _setJailRules(uint32 threshold, uint32 period, uint32 decay) private {
        if (threshold == 0 || decay == 0) revert InvalidParameter();
        jailThreshold = threshold;
        jailPeriod = period;
        faultDecay = decay;
        emit JailRulesUpdated(threshold, period, decay);
    }

    function _slashUnbonding(address operator, uint16 bps) private returns (uint128 taken) {
        Unbonding[] storage queue = _queue[operator];
        for (uint256 i = _queueHead[operator]; i < queue.length; ++i) {
            uint128 cut = uint128((uint256(queue[i].amount) * bps) / BPS);
            queue[i].amount -= cut;
            taken += cut;
        }
    }

    /// @dev `http://` or `https://` followed by at least one byte, none of them a space or control byte.
    function _isHttpUrl(bytes calldata b) private pure returns (bool) {
        uint256 start;
        if (b.length > 7 && bytes7(b[0:7]) == "http://") start = 7;
        else if (b.length > 8 && bytes8(b[0:8]) == "https://") start = 8;
        else return false;
        for (uint256 i = start; i < b.length; ++i) {
            if (uint8(b[i]) <= 0x20 || uint8(b[i]) == 0x7f) return false;
        }
        return true;
    }
}
