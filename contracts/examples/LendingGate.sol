// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {InferenceConsumer} from "../consumer/InferenceConsumer.sol";
import {IInferenceHub} from "../interfaces/IInferenceHub.sol";
import {TensorCodec} from "../libraries/TensorCodec.sol";

/// @title LendingGate
/// @notice Example dapp: lends from a pool only when a risk model, run by a verinfer
///         committee, scores the applicant under a threshold. The applicant pays the fee.
contract LendingGate is InferenceConsumer {
    using SafeERC20 for IERC20;

    enum Decision {
        None,
        Pending,
        Approved,
        Rejected,
        NoResult
    }

    // Two slots: applicant, decision and refundable share the first (solhint's estimate counts otherwise).
    // solhint-disable-next-line gas-struct-packing
    struct Application {
        address applicant;
        Decision decision;
        /// @dev the fee paid, owed back to the applicant when the request expired or was disputed
        uint88 refundable;
        int256 score;
    }

    /// @notice Token lent and used to pay inference fees.
    IERC20 public immutable token;
    /// @notice The risk model and version consulted.
    bytes32 public immutable modelId;
    uint32 public immutable version;
    /// @notice Output tensor and element holding the risk score.
    string public scoreTensor;
    uint256 public immutable scoreIndex;
    /// @notice Highest fixed-point score that is approved.
    int256 public immutable maxScore;
    /// @notice Tokens lent on approval.
    uint256 public immutable loanAmount;
    /// @notice Committee size asked for.
    uint8 public constant REDUNDANCY = 3;
    uint32 public constant CALLBACK_GAS = 300_000;

    mapping(uint256 requestId => Application) public applications;
    /// @notice Fees owed back to applicants whose requests expired or were disputed: never lent out
    ///         (the hub may already have spent the refund itself on a later application's fee).
    uint256 public owedRefunds;

    /// @notice An application was sent for scoring.
    event LoanRequested(uint256 indexed requestId, address indexed applicant);
    /// @notice The model scored the applicant and the gate decided.
    event LoanDecided(uint256 indexed requestId, address indexed applicant, Decision decision, int256 score);
    /// @notice An applicant got back the fee of a request that expired or was disputed.
    event FeeRefunded(uint256 indexed requestId, address indexed applicant, uint256 amount);

    /// @notice Nothing is owed back for this application.
    error NothingRefundable(uint256 requestId);

    constructor(
        IInferenceHub hub_,
        IERC20 token_,
        bytes32 modelId_,
        uint32 version_,
        string memory scoreTensor_,
        uint256 scoreIndex_,
        int256 maxScore_,
        uint256 loanAmount_
    ) InferenceConsumer(hub_) {
        token = token_;
        modelId = modelId_;
        version = version_;
        scoreTensor = scoreTensor_;
        scoreIndex = scoreIndex_;
        maxScore = maxScore_;
        loanAmount = loanAmount_;
    }

    /// @notice Applies for a loan with the applicant's features; pulls the inference fee.
    /// @param features abi-encoded input tensors for the risk model
    /// @return requestId the inference request
    function applyForLoan(bytes calldata features) external returns (uint256 requestId) {
        uint256 fee = hub.quote(modelId, version, REDUNDANCY);
        token.safeTransferFrom(msg.sender, address(this), fee);
        requestId = _requestInference(token, modelId, version, features, REDUNDANCY, CALLBACK_GAS, fee);
        applications[requestId] =
            Application({applicant: msg.sender, decision: Decision.Pending, refundable: uint88(fee), score: 0});
        emit LoanRequested(requestId, msg.sender);
    }

    function _onInferenceResult(uint256 requestId, IInferenceHub.Status status, bytes calldata output)
        internal
        override
    {
        Application storage app = applications[requestId];
        if (app.decision != Decision.Pending) return;
        if (status != IInferenceHub.Status.Finalized) {
            app.decision = Decision.NoResult;
            // Expired and Disputed requests are refunded in full (credited to this contract); a
            // Failed one paid the operators who ran the model on the applicant's input.
            if (status == IInferenceHub.Status.Failed) app.refundable = 0;
            else owedRefunds += app.refundable;
            emit LoanDecided(requestId, app.applicant, Decision.NoResult, 0);
            return;
        }
        TensorCodec.Tensor[] memory tensors = TensorCodec.decode(output);
        int256 score = TensorCodec.at(TensorCodec.find(tensors, scoreTensor), scoreIndex);
        bool approved = score <= maxScore && _canLend();
        app.score = score;
        app.refundable = 0;
        app.decision = approved ? Decision.Approved : Decision.Rejected;
        emit LoanDecided(requestId, app.applicant, app.decision, score);
        if (approved) token.safeTransfer(app.applicant, loanAmount);
    }

    /// @notice Pays an applicant back the fee of an application that expired or was disputed, pulling
    ///         the hub's refund into this contract first.
    /// @param requestId the application's request
    function refundFee(uint256 requestId) external {
        Application storage app = applications[requestId];
        uint256 amount = app.refundable;
        if (app.decision != Decision.NoResult || amount == 0) revert NothingRefundable(requestId);
        app.refundable = 0;
        owedRefunds -= amount;
        claimRefunds();
        emit FeeRefunded(requestId, app.applicant, amount);
        token.safeTransfer(app.applicant, amount);
    }

    /// @dev A loan leaves what is owed back to applicants: in tokens here, or as credit at the hub.
    function _canLend() private view returns (bool) {
        uint256 held = token.balanceOf(address(this));
        return held >= loanAmount && held + hub.claimable(address(this)) >= loanAmount + owedRefunds;
    }
}
