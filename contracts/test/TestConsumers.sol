// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {InferenceConsumer} from "../consumer/InferenceConsumer.sol";
import {IInferenceHub} from "../interfaces/IInferenceHub.sol";

/// @notice A consumer whose requests a test makes through it, paid by itself (test only).
abstract contract TestConsumer is InferenceConsumer {
    /// @notice Requests with this contract as the requester; the fee comes from its credit or its token balance.
    function request(IERC20 feeToken, IInferenceHub.InferenceRequest calldata req) external returns (uint256) {
        return _requestInference(feeToken, req);
    }
}

/// @notice Records what it receives (test only).
contract RecordingConsumer is TestConsumer {
    uint256 public lastRequestId;
    /// @notice Gas left on entering the callback.
    uint256 public lastGas;
    uint8 public lastStatus;
    bytes public lastOutput;
    uint256 public calls;

    constructor(IInferenceHub hub_) InferenceConsumer(hub_) {}

    function _onInferenceResult(uint256 requestId, IInferenceHub.Status status, bytes calldata output)
        internal
        override
    {
        lastRequestId = requestId;
        lastGas = gasleft();
        lastStatus = uint8(status);
        lastOutput = output;
        ++calls;
    }
}

/// @notice Always reverts, with a large revert payload (test only).
contract RevertingConsumer is TestConsumer {
    error Boom(bytes payload);

    constructor(IInferenceHub hub_) InferenceConsumer(hub_) {}

    function _onInferenceResult(uint256, IInferenceHub.Status, bytes calldata) internal pure override {
        revert Boom(new bytes(10_000));
    }
}

/// @notice Burns all the gas it is given (test only).
contract GasBurnerConsumer is TestConsumer {
    uint256 public counter;

    constructor(IInferenceHub hub_) InferenceConsumer(hub_) {}

    function _onInferenceResult(uint256, IInferenceHub.Status, bytes calldata) internal override {
        while (true) ++counter;
    }
}

/// @notice Keeps the digest and status of each result: the storage a typical dapp callback writes
///         (one slot per request), used by the benchmark (test only).
contract DigestConsumer is TestConsumer {
    mapping(uint256 requestId => bytes32) public digests;

    constructor(IInferenceHub hub_) InferenceConsumer(hub_) {}

    function _onInferenceResult(uint256 requestId, IInferenceHub.Status status, bytes calldata output)
        internal
        override
    {
        digests[requestId] = keccak256(abi.encodePacked(uint8(status), output));
    }
}

/// @notice Records only the gas it was given: how much of its limit a callback really gets (test only).
contract GasProbeConsumer is TestConsumer {
    uint256 public lastGas;

    constructor(IInferenceHub hub_) InferenceConsumer(hub_) {}

    function _onInferenceResult(uint256, IInferenceHub.Status, bytes calldata) internal override {
        lastGas = gasleft();
    }
}

/// @notice The committee view every committee-drawing mode has (test only).
interface ICommitteePreview {
    function previewCommittee(uint256 requestId) external view returns (address[] memory);
}

/// @notice An attacker that requests only when the committee suits it: it asks for the committee in
///         the transaction that makes the request and reverts unless its own operators hold the
///         majority (test only).
contract CommitteeGambler {
    IInferenceHub public immutable hub;
    ICommitteePreview public immutable mode;

    error Unfavourable(uint256 colluders);
    error CommitteeUnknown(bytes reason);

    constructor(IInferenceHub hub_, ICommitteePreview mode_) {
        hub = hub_;
        mode = mode_;
    }

    function gamble(IERC20 feeToken, IInferenceHub.InferenceRequest calldata req, address[] calldata colluders)
        external
        returns (uint256 requestId)
    {
        feeToken.approve(address(hub), req.maxFee);
        requestId = hub.requestInference(req);
        address[] memory committee;
        try mode.previewCommittee(requestId) returns (address[] memory drawn) {
            committee = drawn;
        } catch (bytes memory reason) {
            revert CommitteeUnknown(reason);
        }
        uint256 mine;
        for (uint256 i = 0; i < committee.length; ++i) {
            for (uint256 j = 0; j < colluders.length; ++j) {
                if (committee[i] == colluders[j]) ++mine;
            }
        }
        if (mine * 2 <= committee.length) revert Unfavourable(mine);
    }
}

/// @notice Calls back into the hub from its callback, paying out someone's credit, and records how
///         the hub answered (test only).
contract ReentrantConsumer is TestConsumer {
    address public payee;
    bool public reentered;
    bytes public answer;

    constructor(IInferenceHub hub_, address payee_) InferenceConsumer(hub_) {
        payee = payee_;
    }

    function _onInferenceResult(uint256, IInferenceHub.Status, bytes calldata) internal override {
        try hub.claimFor(payee) {
            reentered = true;
        } catch (bytes memory reason) {
            answer = reason;
        }
    }
}
