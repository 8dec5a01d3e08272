"""The dapp SDK: request inferences, wait for settlement, read results, models and operators."""

from verinfer.chain.sender import TransactionFailed
from verinfer.client.client import Client
from verinfer.client.errors import (
    InferenceTimeout,
    InputMismatch,
    InsufficientAllowance,
    InsufficientBalance,
    RequestDisputed,
    RequestExpired,
    RequestFailed,
    RequestNotFinalized,
    UnknownModel,
    UnknownVersion,
    VerinferError,
)
from verinfer.client.records import InferenceResult, ModelSummary, PendingRequest, Settlement

__all__ = [
    "Client",
    "InferenceResult",
    "InferenceTimeout",
    "InputMismatch",
    "InsufficientAllowance",
    "InsufficientBalance",
    "ModelSummary",
    "PendingRequest",
    "RequestDisputed",
    "RequestExpired",
    "RequestFailed",
    "RequestNotFinalized",
    "Settlement",
    "TransactionFailed",
    "UnknownModel",
    "UnknownVersion",
    "VerinferError",
]
