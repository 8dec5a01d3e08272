// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IInferenceConsumer} from "../interfaces/IInferenceConsumer.sol";
import {IInferenceHub} from "../interfaces/IInferenceHub.sol";

/// @title InferenceConsumer
/// @notice Base for dapp contracts: request with `_requestInference`, act on the settled result in
///         `_onInferenceResult`. Results are accepted only from the hub, which calls back only the
///         contract that made (and paid for) a request, once. Requests are paid from this contract's
///         credit at the hub when it covers them (anyone may fund it with `hub.deposit(this, amount)`;
///         refunds land there too), otherwise from its token balance.
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

    /// @notice Moves this contract's credit at the hub (deposits, refunds of expired, disputed or failed
    ///         requests) into its token balance. Anyone may call; the tokens only come here.
    /// @return amount tokens received (zero when nothing was credited)
    function claimRefunds() public returns (uint256 amount) {
        if (hub.claimable(address(this)) == 0) return 0;
        return hub.claimFor(address(this));
    }

    /// @notice Requests an inference paid from this contract's credit at the hub, or its token balance;
    ///         the result comes back to `_onInferenceResult` (when `callbackGasLimit` is above zero).
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
    /// @param request the request; unless the credit covers its `maxFee`, that much is approved to the
    ///        hub for this call only
    /// @return requestId the new request
    function _requestInference(IERC20 feeToken, IInferenceHub.InferenceRequest memory request)
        internal
        returns (uint256 requestId)
    {
        if (hub.claimable(address(this)) >= request.maxFee) return hub.requestInference(request);
        feeToken.forceApprove(address(hub), request.maxFee);
        requestId = hub.requestInference(request);
        feeToken.forceApprove(address(hub), 0);
    }

    /// @notice Override to act on a settled request.
    /// @param requestId the request
    /// @param status Finalized, Failed, Disputed or Expired
    /// @param output the accepted output tensors (TensorCodec); empty when Disputed or Expired
    function _onInferenceResult(uint256 requestId, IInferenceHub.Status status, bytes calldata output) internal virtual;
}
