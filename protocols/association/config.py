"""Configuration of a DLMS association: security policy, client and server settings, gateway address."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from protocols.acse import MechanismName
from protocols.security import SYSTEM_TITLE_SIZE, SecurityControlField
from protocols.xdlms.conformance import Conformance

__all__ = [
    "DEFAULT_CONFORMANCE",
    "MAX_INVOCATION_COUNTER",
    "CipheringMode",
    "ClientConfig",
    "CounterCallback",
    "GatewayAddress",
    "SecurityPolicy",
    "ServerConfig",
]

MAX_INVOCATION_COUNTER = 0xFFFFFFFF

#: What a client proposes unless told otherwise: the LN services, blocks, selective access, pushes.
DEFAULT_CONFORMANCE = (
    Conformance.GET
    | Conformance.SET
    | Conformance.ACTION
    | Conformance.SELECTIVE_ACCESS
    | Conformance.MULTIPLE_REFERENCES
    | Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ
    | Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE
    | Conformance.BLOCK_TRANSFER_WITH_ACTION
    | Conformance.PRIORITY_MGMT_SUPPORTED
    | Conformance.ATTRIBUTE0_SUPPORTED_WITH_GET
    | Conformance.EVENT_NOTIFICATION
    | Conformance.DATA_NOTIFICATION
    | Conformance.GENERAL_BLOCK_TRANSFER
)

#: Called with each invocation counter value the moment it is consumed, before the APDU that
#: carries it is queued, so the caller can persist it first.
CounterCallback = Callable[[int], None]

_SUPPORTED_MECHANISMS = (MechanismName.NONE, MechanismName.LLS, MechanismName.HLS_GMAC)


class CipheringMode(IntEnum):
    """How xDLMS APDUs are protected once associated (not a value of the standard)."""

    NONE = 0
    #: glo-xxx APDUs (ded-xxx when a dedicated key was agreed), e.g. glo-get-request 0xC8.
    SERVICE_SPECIFIC = 1
    #: general-glo-ciphering 0xDB (general-ded-ciphering 0xDC with a dedicated key).
    GENERAL = 2


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    """One side's security material for one association.

    ``system_title`` is this side's own. ``encryption_key`` is the global unicast encryption key
    (EK), ``authentication_key`` the AK. ``dedicated_key`` is proposed by a client in its
    InitiateRequest; a server learns it from there. ``security_control`` is the byte this side
    puts on what it ciphers; what it receives must claim at least the same protection.
    """

    mechanism: MechanismName = MechanismName.NONE
    ciphering: CipheringMode = CipheringMode.NONE
    password: bytes | None = None
    system_title: bytes | None = None
    encryption_key: bytes | None = None
    authentication_key: bytes | None = None
    dedicated_key: bytes | None = None
    security_control: int = 0x30

    def __post_init__(self) -> None:
        if self.mechanism not in _SUPPORTED_MECHANISMS:
            raise ValueError(f"mechanism {self.mechanism!r} is not supported (none, LLS, HLS-GMAC)")
        if self.mechanism is MechanismName.LLS and not self.password:
            raise ValueError("LLS needs a password")
        needs_keys = self.mechanism is MechanismName.HLS_GMAC or self.ciphering is not CipheringMode.NONE
        if needs_keys:
            if self.system_title is None or len(self.system_title) != SYSTEM_TITLE_SIZE:
                raise ValueError("HLS-GMAC and ciphering need an 8-byte system title")
            if self.encryption_key is None or self.authentication_key is None:
                raise ValueError("HLS-GMAC and ciphering need the encryption and authentication keys")
        if self.dedicated_key is not None and self.ciphering is CipheringMode.NONE:
            raise ValueError("a dedicated key is only used with ciphering")
        sc = SecurityControlField.from_int(self.security_control)
        if sc.security_suite != 0 or sc.compressed or sc.broadcast_key:
            raise ValueError("only security suite 0 with the unicast key and no compression is supported")
        if self.ciphering is not CipheringMode.NONE and not (sc.authenticated or sc.encrypted):
            raise ValueError("ciphering needs a security control with authentication or encryption")

    @property
    def ciphered(self) -> bool:
        return self.ciphering is not CipheringMode.NONE

    @property
    def uses_system_titles(self) -> bool:
        return self.ciphered or self.mechanism is MechanismName.HLS_GMAC


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    """Where a concentrator forwards our APDUs: network id and the meter's physical address."""

    network_id: int
    physical_device_address: bytes


def _check_counter(value: int | None, what: str) -> None:
    if value is not None and not 0 <= value <= MAX_INVOCATION_COUNTER:
        raise ValueError(f"{what} {value} does not fit 32 bits")


def _check_pdu_size(value: int, what: str) -> None:
    if not 12 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} outside 12-65535")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A client's settings for one association with one server (logical device).

    ``invocation_counter`` is the next value to use; ``server_invocation_counter`` the last
    value received from this server (None when unknown: any value is then accepted once).
    ``client_challenge`` is CtoS for HLS-GMAC (8 to 64 bytes, fresh per association, made by
    the caller). ``server_system_title`` is needed when the AARE will not carry it.
    """

    policy: SecurityPolicy = field(default_factory=SecurityPolicy)
    client_challenge: bytes | None = None
    invocation_counter: int = 0
    server_invocation_counter: int | None = None
    server_system_title: bytes | None = None
    proposed_conformance: Conformance = DEFAULT_CONFORMANCE
    max_receive_pdu_size: int = 0xFFFF
    gateway: GatewayAddress | None = None
    counter_used: CounterCallback | None = None

    def __post_init__(self) -> None:
        _check_counter(self.invocation_counter, "invocation counter")
        _check_counter(self.server_invocation_counter, "server invocation counter")
        _check_pdu_size(self.max_receive_pdu_size, "max receive PDU size")
        if self.policy.mechanism is MechanismName.HLS_GMAC and not (
            self.client_challenge is not None and 8 <= len(self.client_challenge) <= 64
        ):
            raise ValueError("HLS-GMAC needs a client challenge (CtoS) of 8 to 64 bytes")
        if self.server_system_title is not None and len(self.server_system_title) != SYSTEM_TITLE_SIZE:
            raise ValueError("a system title is 8 bytes")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """A server's (meter's logical device's) settings for one client SAP.

    ``invocation_counter`` is the next value the server uses; ``client_invocation_counter`` the
    last value received from this client (replay check). ``server_challenge`` is StoC for
    HLS-GMAC, fresh per association, made by the caller. ``client_system_title``, when given,
    is the only calling AP title accepted.
    """

    policy: SecurityPolicy = field(default_factory=SecurityPolicy)
    server_challenge: bytes | None = None
    invocation_counter: int = 0
    client_invocation_counter: int | None = None
    client_system_title: bytes | None = None
    supported_conformance: Conformance = DEFAULT_CONFORMANCE
    max_receive_pdu_size: int = 0xFFFF
    counter_used: CounterCallback | None = None

    def __post_init__(self) -> None:
        _check_counter(self.invocation_counter, "invocation counter")
        _check_counter(self.client_invocation_counter, "client invocation counter")
        _check_pdu_size(self.max_receive_pdu_size, "max receive PDU size")
        if self.policy.mechanism is MechanismName.HLS_GMAC and not (
            self.server_challenge is not None and 8 <= len(self.server_challenge) <= 64
        ):
            raise ValueError("HLS-GMAC needs a server challenge (StoC) of 8 to 64 bytes")
        if self.policy.dedicated_key is not None:
            raise ValueError("a server learns the dedicated key from the client's InitiateRequest")
