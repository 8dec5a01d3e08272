// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IInferenceConsumer} from "../interfaces/IInferenceConsumer.sol";
import {IInferenceHub} from "../interfaces/IInferenceHub.sol";

/// @title InferenceConsumer
/// @notice Base for dapp contracts: request with `_requestInference`, act on the settled result in
///         `_onInferenceResult`. Results are accepted only from the hub and only for requests this
///         contract made; refunds come back with `claimRefunds`.
abstract contract InferenceConsumer is IInferenceConsumer {
    using SafeERC20 for IERC20;

    /// @notice The hub this consumer requests from and accepts results of.
    IInferenceHub public immutable hub;

    /// @dev Requests made and not yet answered.
    mapping(uint256 requestId => bool) private _awaiting;

    /// @notice Someone other than the hub delivered a result.
    error OnlyHub(address caller);
    /// @notice A result arrived for a request this contract did not make (or was answered already).
    error UnexpectedResult(uint256 requestId);

    /// @param hub_ the inference hub
    constructor(IInferenceHub hub_) {
        hub = hub_;
    }

    /// @inheritdoc IInferenceConsumer
    function onInferenceResult(uint256 requestId, uint8 status, bytes calldata output) external {
        if (msg.sender != address(hub)) revert OnlyHub(msg.sender);
        if (!_awaiting[requestId]) revert UnexpectedResult(requestId);
        delete _awaiting[requestId];
        _onInferenceResult(requestId, IInferenceHub.Status(status), output);
    }

    /// @notice Moves what the hub credited to this contract (refunds of expired, disputed or failed
    ///         requests) into its token balance. Anyone may call; the tokens only come here.
    /// @return amount tokens received (zero when nothing was credited)
    function claimRefunds() public returns (uint256 amount) {
        if (hub.claimable(address(this)) == 0) return 0;
        return hub.claimFor(address(this));
    }

    /// @notice Requests an inference paid from this contract's token balance; the result comes back
    ///         to `_onInferenceResult` (when `callbackGasLimit` is above zero).
    /// @param feeToken the hub's fee token
    /// @param modelId the model
    /// @param version the model version
    /// @param input abi-encoded input tensors
    /// @param k committee size
    /// @param callbackGasLimit gas for `_onInferenceResult`
    /// @param maxFee the most to pay
    /// @return requestId the new request
    function _requestInference(
        IERC20 feeToken,
        bytes32 modelId,
        uint32 version,
        bytes memory input,
        uint8 k,
        uint32 callbackGasLimit,
        uint256 maxFee
    ) internal returns (uint256 requestId) {
        return _requestInference(
            feeToken,
            IInferenceHub.InferenceRequest({
                modelId: modelId,
                version: version,
                mode: 1,
                k: k,
                callbackGasLimit: callbackGasLimit,
                digestOnly: false,
                maxFee: maxFee,
                input: input
            })
        );
    }

    /// @notice Requests an inference with every option of the hub's request (mode, digest only).
    /// @param feeToken the hub's fee token
    /// @param request the request; its `maxFee` is approved to the hub for this call only
    /// @return requestId the new request
    function _requestInference(IERC20 feeToken, IInferenceHub.InferenceRequest memory request)
        internal
        returns (uint256 requestId)
    {
        feeToken.forceApprove(address(hub), request.maxFee);
        requestId = hub.requestInference(request);
        feeToken.forceApprove(address(hub), 0);
        _awaiting[requestId] = true;
    }

    /// @notice Override to act on a settled request.
    /// @param requestId the request
    /// @param status Finalized, Failed, Disputed or Expired
    /// @param output the accepted output tensors (TensorCodec); empty when Disputed or Expired
    function _onInferenceResult(uint256 requestId, IInferenceHub.Status status, bytes calldata output) internal virtual;
}
