// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IInferenceConsumer} from "../interfaces/IInferenceConsumer.sol";
import {IInferenceHub} from "../interfaces/IInferenceHub.sol";

/// @title InferenceConsumer
/// @notice Base for dapp contracts: request with `_requestInference`, act on the settled
///         result in `_onInferenceResult`. The hub alone may deliver results.
abstract contract InferenceConsumer is IInferenceConsumer {
    using SafeERC20 for IERC20;

    /// @notice The hub this consumer requests from and accepts results of.
    IInferenceHub public immutable hub;

    /// @notice Someone other than the hub delivered a result.
    error OnlyHub(address caller);

    /// @param hub_ the inference hub
    constructor(IInferenceHub hub_) {
        hub = hub_;
    }

    /// @inheritdoc IInferenceConsumer
    function onInferenceResult(uint256 requestId, uint8 status, bytes calldata output) external {
        if (msg.sender != address(hub)) revert OnlyHub(msg.sender);
        _onInferenceResult(requestId, IInferenceHub.Status(status), output);
    }

    /// @notice Requests an inference paid from this contract's token balance, with this
    ///         contract as the callback.
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
        feeToken.forceApprove(address(hub), maxFee);
        requestId = hub.requestInference(
            IInferenceHub.InferenceRequest({
                modelId: modelId,
                version: version,
                mode: 1,
                k: k,
                callback: address(this),
                callbackGasLimit: callbackGasLimit,
                maxFee: maxFee,
                input: input
            })
        );
        feeToken.forceApprove(address(hub), 0);
    }

    /// @notice Override to act on a settled request.
    /// @param requestId the request
    /// @param status Finalized, Failed, Disputed or Expired
    /// @param output the accepted output tensors (TensorCodec); empty when Disputed or Expired
    function _onInferenceResult(uint256 requestId, IInferenceHub.Status status, bytes calldata output) internal virtual;
}
