"""The DLMS/COSEM association layer: client and server connection objects over whole APDUs."""

from __future__ import annotations

from protocols.association.client import (
    ASSOCIATION_LN,
    REPLY_TO_HLS_AUTHENTICATION,
    ClientAssociation,
    ClientState,
)
from protocols.association.config import (
    DEFAULT_CONFORMANCE,
    CipheringMode,
    ClientConfig,
    CounterCallback,
    GatewayAddress,
    SecurityPolicy,
    ServerConfig,
)
from protocols.association.events import (
    ActionRequested,
    ActionResult,
    Associated,
    AssociationRejected,
    ConfirmedServiceErrorReceived,
    Event,
    ExceptionReceived,
    GetRequested,
    GetResult,
    GetWithListRequested,
    GetWithListResult,
    NotificationReceived,
    Released,
    RemoteProtocolError,
    SecurityFailure,
    SetRequested,
    SetResult,
)
from protocols.association.server import ServerAssociation, ServerState

__all__ = [
    "ASSOCIATION_LN",
    "DEFAULT_CONFORMANCE",
    "REPLY_TO_HLS_AUTHENTICATION",
    "ActionRequested",
    "ActionResult",
    "Associated",
    "AssociationRejected",
    "CipheringMode",
    "ClientAssociation",
    "ClientConfig",
    "ClientState",
    "ConfirmedServiceErrorReceived",
    "CounterCallback",
    "Event",
    "ExceptionReceived",
    "GatewayAddress",
    "GetRequested",
    "GetResult",
    "GetWithListRequested",
    "GetWithListResult",
    "NotificationReceived",
    "Released",
    "RemoteProtocolError",
    "SecurityFailure",
    "SecurityPolicy",
    "ServerAssociation",
    "ServerConfig",
    "ServerState",
    "SetRequested",
    "SetResult",
]
