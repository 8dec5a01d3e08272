"""The SDK's failures: each says what went wrong and what to do about it."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from verinfer.client.records import Settlement


class VerinferError(Exception):
    """Base of every SDK error."""


class UnknownModel(VerinferError, LookupError):
    """No model with that name is registered."""


class InvalidArgument(VerinferError, ValueError):
    """An argument the call cannot take (a non-positive amount, say); nothing was sent."""


class InvalidModelName(InvalidArgument):
    """A name that breaks the registry's naming rule (`verinfer.models.names.NAME_RULE`); nothing was sent."""


class UnknownVersion(VerinferError, LookupError):
    """The model exists but not that version (or only deprecated ones)."""


class InputMismatch(VerinferError, ValueError):
    """The inputs do not fit the model version's tensor spec; nothing was sent."""


class InsufficientBalance(VerinferError):
    """The account holds fewer fee tokens than the request costs."""


class InsufficientAllowance(VerinferError):
    """The hub may not pull the fee (and the client was told not to approve it)."""


class InferenceTimeout(VerinferError, TimeoutError):
    """The request did not settle in time; it is still pending on-chain and can be waited on again."""

    def __init__(self, message: str, request_id: int) -> None:
        super().__init__(message)
        self.request_id = request_id


class RequestNotFinalized(VerinferError):
    """The request settled without an accepted output."""

    def __init__(self, message: str, settlement: "Settlement") -> None:
        super().__init__(message)
        self.settlement = settlement


class RequestFailed(RequestNotFinalized):
    """The committee agreed the model cannot run on this input; `settlement.error_code` says why."""


class RequestDisputed(RequestNotFinalized):
    """No output reached quorum; the fee was refunded."""


class RequestExpired(RequestNotFinalized):
    """Too few operators committed or revealed in time; the fee was refunded."""
