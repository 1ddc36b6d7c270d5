"""Events that the client and server association objects hand to their caller."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.acse import AssociationResult, ReleaseResponseReason, ResultSource
from protocols.errors import DlmsError, SecurityError
from protocols.xdlms.common import (
    ActionResult as ActionResultCode,
)
from protocols.xdlms.common import (
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccessDescriptor,
)
from protocols.xdlms.conformance import Conformance
from protocols.xdlms.errors import ConfirmedServiceError, ExceptionResponse
from protocols.xdlms.notification import DataNotification, EventNotificationRequest

__all__ = [
    "ActionRequested",
    "ActionResult",
    "Associated",
    "AssociationRejected",
    "ConfirmedServiceErrorReceived",
    "Event",
    "ExceptionReceived",
    "GetRequested",
    "GetResult",
    "GetWithListRequested",
    "GetWithListResult",
    "NotificationReceived",
    "Released",
    "RemoteProtocolError",
    "SecurityFailure",
    "SetRequested",
    "SetResult",
]


@dataclass(frozen=True, slots=True)
class Associated:
    """The association is usable (after reply_to_HLS_authentication with HLS-GMAC).

    ``peer_max_receive_pdu_size`` is what the peer can take: the server's on the client side,
    the client's on the server side.
    """

    conformance: Conformance
    peer_max_receive_pdu_size: int
    peer_system_title: bytes | None


@dataclass(frozen=True, slots=True)
class AssociationRejected:
    """The AARE refused the association (client), or this server refused an AARQ (server).

    ``diagnostic`` is an AcseServiceUserDiagnostic / AcseServiceProviderDiagnostic value;
    ``initiate_error`` the error's value when the user-information carried a ConfirmedServiceError,
    and ``service_error`` that whole error, whose kind tells e.g. an initiate error from an
    application-reference deciphering error.
    """

    result: AssociationResult
    diagnostic: int
    result_source: ResultSource = ResultSource.ACSE_SERVICE_USER
    initiate_error: int | None = None
    service_error: ConfirmedServiceError | None = None


@dataclass(frozen=True, slots=True)
class Released:
    reason: ReleaseResponseReason | None = ReleaseResponseReason.NORMAL


@dataclass(frozen=True, slots=True)
class GetResult:
    """The whole value of one GET (blocks already joined): encoded A-XDR ``Data``, or the error."""

    invoke_id: int
    data: bytes | DataAccessResult


@dataclass(frozen=True, slots=True)
class GetWithListResult:
    invoke_id: int
    results: tuple[bytes | DataAccessResult, ...]


@dataclass(frozen=True, slots=True)
class SetResult:
    invoke_id: int
    result: DataAccessResult


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The outcome of an ACTION: the spec's Action-Result and the optional return data."""

    invoke_id: int
    result: ActionResultCode
    data: bytes | DataAccessResult | None = None


@dataclass(frozen=True, slots=True)
class ExceptionReceived:
    """The peer answered with an ExceptionResponse; ``invoke_id`` of the request it ended, if any."""

    invoke_id: int | None
    exception: ExceptionResponse


@dataclass(frozen=True, slots=True)
class ConfirmedServiceErrorReceived:
    invoke_id: int | None
    error: ConfirmedServiceError


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    """A push (deciphered when it came ciphered)."""

    notification: DataNotification | EventNotificationRequest


@dataclass(frozen=True, slots=True)
class SecurityFailure:
    """Deciphering, authentication or the replay check failed.

    ``invoke_id`` is the request that this ended, if one was outstanding.
    """

    error: SecurityError
    invoke_id: int | None = None


@dataclass(frozen=True, slots=True)
class RemoteProtocolError:
    """Bytes that did not decode, or an APDU the current state does not allow.

    ``invoke_id`` is the request that this ended, if one was outstanding.
    """

    error: DlmsError
    invoke_id: int | None = None


@dataclass(frozen=True, slots=True)
class GetRequested:
    invoke_id: int
    descriptor: CosemAttributeDescriptor
    access_selection: SelectiveAccessDescriptor | None = None


@dataclass(frozen=True, slots=True)
class GetWithListRequested:
    invoke_id: int
    items: tuple[CosemAttributeDescriptorWithSelection, ...]


@dataclass(frozen=True, slots=True)
class SetRequested:
    """A SET to apply; ``value`` is the encoded ``Data`` (datablocks already joined)."""

    invoke_id: int
    descriptor: CosemAttributeDescriptor
    value: bytes
    access_selection: SelectiveAccessDescriptor | None = None


@dataclass(frozen=True, slots=True)
class ActionRequested:
    """A method to invoke; ``parameters`` is the encoded ``Data`` (pblocks already joined) or None."""

    invoke_id: int
    descriptor: CosemMethodDescriptor
    parameters: bytes | None = None


Event = (
    Associated
    | AssociationRejected
    | Released
    | GetResult
    | GetWithListResult
    | SetResult
    | ActionResult
    | ExceptionReceived
    | ConfirmedServiceErrorReceived
    | NotificationReceived
    | SecurityFailure
    | RemoteProtocolError
    | GetRequested
    | GetWithListRequested
    | SetRequested
    | ActionRequested
)
