// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IInferenceHub} from "../interfaces/IInferenceHub.sol";
import {IVerificationMode} from "../interfaces/IVerificationMode.sol";

/// @notice A mode contract whose outcomes a test dictates: it opens rounds with a fixed window and
///         passes any outcome, held-fee call or penalty straight to its hub, so a test can see how the
///         core handles what a (buggy or hostile) mode reports. Anyone may drive it (test only).
contract ScriptedMode is IVerificationMode {
    /// @notice The hub this mode reports to.
    IInferenceHub public immutable hub;
    /// @notice Blocks from the seed block to a round's deadline.
    uint40 public window;

    /// @notice What `open` was called with, per request.
    struct Opened {
        uint8 k;
        uint40 seedBlock;
        uint32 maxOutputBytes;
        bool digestOnly;
        uint40 deadline;
        bytes32 inputHash;
    }

    struct Settled {
        bytes32 digest;
        bytes output;
        address[] agreeing;
        uint40 settledBlock;
        uint8 errorCode;
    }

    mapping(uint256 requestId => Opened) private _opened;
    mapping(uint256 requestId => Settled) private _settled;

    /// @notice The hub opened a round.
    event RoundOpened(uint256 indexed requestId, uint8 k, uint40 seedBlock, uint32 maxOutputBytes, bool digestOnly);

    constructor(IInferenceHub hub_, uint40 window_) {
        hub = hub_;
        window = window_;
    }

    /// @inheritdoc IVerificationMode
    function open(uint256 requestId, Opening calldata o) external returns (uint40 deadline) {
        if (msg.sender != address(hub)) revert OnlyHub(msg.sender);
        deadline = o.seedBlock + window;
        _opened[requestId] = Opened(o.k, o.seedBlock, o.maxOutputBytes, o.digestOnly, deadline, o.inputHash);
        emit RoundOpened(requestId, o.k, o.seedBlock, o.maxOutputBytes, o.digestOnly);
    }

    /// @notice Reports `outcome` to the hub; remembers it for `resultOf`.
    function settle(uint256 requestId, IInferenceHub.Outcome calldata outcome, bytes calldata output) external {
        _settled[requestId] =
            Settled(outcome.digest, output, outcome.paid, uint40(block.number), outcome.errorCode);
        hub.settle(requestId, outcome, output);
    }

    /// @notice Passes a penalty to the hub.
    function penalize(
        uint256 requestId,
        address operator,
        IInferenceHub.Fault fault,
        uint16 bps,
        address reporter,
        uint16 rewardBps
    ) external returns (uint256) {
        return hub.penalize(requestId, operator, fault, bps, reporter, rewardBps);
    }

    /// @notice Pays one held fee through the hub.
    function payHeld(uint256 requestId, address member) external {
        hub.payHeld(requestId, member);
    }

    /// @notice Refunds the held fees through the hub.
    function releaseHeld(uint256 requestId) external {
        hub.releaseHeld(requestId);
    }

    /// @notice What the hub opened a round with.
    function opened(uint256 requestId) external view returns (Opened memory) {
        return _opened[requestId];
    }

    /// @inheritdoc IVerificationMode
    function deadlineOf(uint256 requestId) external view returns (uint40) {
        return _opened[requestId].deadline;
    }

    /// @inheritdoc IVerificationMode
    function resultOf(uint256 requestId)
        external
        view
        returns (bytes32, bytes memory, address[] memory, uint40, uint8)
    {
        Settled storage s = _settled[requestId];
        return (s.digest, s.output, s.agreeing, s.settledBlock, s.errorCode);
    }
}
