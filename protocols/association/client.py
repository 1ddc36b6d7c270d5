"""The client side of a DLMS/COSEM association: a sans-IO connection object over whole APDUs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from protocols import axdr
from protocols.acse import (
    AARE_TAG,
    AARQ_TAG,
    RLRE_TAG,
    RLRQ_TAG,
    Aare,
    Aarq,
    AcseServiceUserDiagnostic,
    ApplicationContextName,
    AssociationResult,
    MechanismName,
    ReleaseRequestReason,
    Rlre,
    Rlrq,
    UserInformation,
    decode_acse_apdu,
)
from protocols.association._machine import Machine, Transition, Unauthentic, Undecodable, row
from protocols.association._protection import Protection, SecretKeys, protect, unprotect
from protocols.association.config import CipheringMode, ClientConfig
from protocols.association.events import (
    ActionResult,
    Associated,
    AssociationRejected,
    ConfirmedServiceErrorReceived,
    Event,
    ExceptionReceived,
    GetResult,
    GetWithListResult,
    NotificationReceived,
    Released,
    RemoteProtocolError,
    SecurityFailure,
    SetResult,
)
from protocols.axdr import Data, DataTag
from protocols.errors import DecodeError, DlmsError, SecurityError, StateError
from protocols.obis import ObisCode
from protocols.security import (
    SECURITY_HEADER_SIZE,
    TAG_SIZE,
    ServiceSpecificCipheredApdu,
    hls_gmac_response,
    is_ciphered_tag,
    verify_hls_gmac_response,
)
from protocols.xdlms.action import (
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithPblock,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithPblock,
)
from protocols.xdlms.apdu import decode_xdlms_apdu
from protocols.xdlms.common import ActionResult as ActionResultCode
from protocols.xdlms.common import (
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
    Reader,
    SelectiveAccessDescriptor,
    XdlmsTag,
    decode_entry,
    read_result,
    read_sequence,
)
from protocols.xdlms.conformance import Conformance
from protocols.xdlms.errors import ConfirmedServiceError, ExceptionResponse
from protocols.xdlms.gateway import GatewayRequest, GatewayResponse, decode_gateway_response
from protocols.xdlms.gbt import GbtReceiver, GeneralBlockTransfer
from protocols.xdlms.get import (
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
)
from protocols.xdlms.initiate import ConfirmedServiceError as InitiateServiceError
from protocols.xdlms.initiate import InitiateRequest, InitiateResponse
from protocols.xdlms.notification import DataNotification, EventNotificationRequest
from protocols.xdlms.set import (
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseLastDatablockWithList,
    SetResponseNormal,
    SetResponseWithList,
)

__all__ = ["ASSOCIATION_LN", "REPLY_TO_HLS_AUTHENTICATION", "ClientAssociation", "ClientState"]

#: The current association object (class 15) and its method reply_to_HLS_authentication.
ASSOCIATION_LN = ObisCode(0, 0, 40, 0, 0, 255)
REPLY_TO_HLS_AUTHENTICATION = CosemMethodDescriptor(15, ASSOCIATION_LN, 1)

# f(challenge) carries security control 0x10 (authentication only, suite 0) whatever the policy.
_HLS_SECURITY_CONTROL = 0x10
# Largest growth of an APDU once ciphered: tag, 3-byte length, header, tag (service-specific),
# plus tag, length and system title for general-glo-ciphering.
_CIPHER_OVERHEAD = {
    CipheringMode.NONE: 0,
    CipheringMode.SERVICE_SPECIFIC: 1 + 3 + SECURITY_HEADER_SIZE + TAG_SIZE,
    CipheringMode.GENERAL: 1 + 1 + 8 + 3 + SECURITY_HEADER_SIZE + TAG_SIZE,
}
# An octet-string length grows from one byte (empty) to at most three (65535).
_LENGTH_GROWTH = 2


class ClientState(Enum):
    IDLE = "idle"
    AWAITING_AARE = "awaiting AARE"
    AWAITING_HLS_REPLY = "awaiting reply_to_HLS_authentication"
    READY = "ready"
    AWAITING_RESPONSE = "awaiting response"
    AWAITING_RLRE = "awaiting RLRE"

    # Members are singletons compared by identity: hash them so too (Enum's own hashes the name in
    # Python, and every transition looks a state up in a dict or set).
    __hash__ = object.__hash__


class _Service(Enum):
    HLS = "reply_to_HLS_authentication"
    GET = "get"
    GET_WITH_LIST = "get-with-list"
    SET = "set"
    ACTION = "action"


@dataclass(slots=True)
class _Pending:
    """The one outstanding request: what it is, the plain APDUs still to send, blocks received."""

    service: _Service
    invoke_id_and_priority: InvokeIdAndPriority
    apdus: list[bytes]
    sent: int = 0
    blocks: list[bytes] = field(default_factory=list)
    gbt: GbtReceiver | None = None

    @property
    def invoke_id(self) -> int:
        return self.invoke_id_and_priority.invoke_id


# Local calls, as types for the transition table.
@dataclass(frozen=True, slots=True)
class _Associate:
    pass


@dataclass(frozen=True, slots=True)
class _Request:
    pending: _Pending


@dataclass(frozen=True, slots=True)
class _Release:
    pass


@dataclass(frozen=True, slots=True)
class _Cancel:
    pass


@dataclass(frozen=True, slots=True)
class _Reset:
    pass


_REQUEST_DONE_ON_ERROR = ClientState.READY

_RESPONSE_TYPES = (
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    SetResponseNormal,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseLastDatablockWithList,
    SetResponseWithList,
    ActionResponseNormal,
    ActionResponseWithPblock,
    ActionResponseWithList,
    ActionResponseNextPblock,
)
# APDUs a server may send unciphered even in a ciphered context.
_PLAIN_ALLOWED = (ExceptionResponse, ConfirmedServiceError, GeneralBlockTransfer)


class ClientAssociation(Machine):
    """One association of a client with one server (logical device), h11-style.

    Local calls (``associate``, ``get``, ``set``, ``action``, ``release``...) queue APDUs that
    ``data_to_send()`` hands out; ``receive_apdu()`` takes one whole APDU from the server and
    returns events. One request is outstanding at a time. Block transfer (GET datablocks,
    SET/ACTION blocks, general block transfer) is driven by the object itself: it queues the
    next request or acknowledgement and emits one result at the end.
    """

    def __init__(self, config: ClientConfig) -> None:
        super().__init__(ClientState.IDLE, config.invocation_counter, config.counter_used)
        self._config = config
        self._policy = config.policy
        policy = config.policy
        self._keys = (
            SecretKeys(policy.encryption_key, policy.authentication_key, policy.dedicated_key)
            if policy.encryption_key is not None and policy.authentication_key is not None
            else None
        )
        self._server_counter = config.server_invocation_counter
        self._server_title = config.server_system_title
        self._conformance = Conformance(0)
        self._server_max_pdu = 0
        self._invoke_id = 0
        self._pending: _Pending | None = None

    # --- what the caller can read ---------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._state  # type: ignore[return-value]

    @property
    def conformance(self) -> Conformance:
        """What the server granted (empty before the AARE)."""
        return self._conformance

    @property
    def server_max_receive_pdu_size(self) -> int:
        return self._server_max_pdu

    @property
    def server_system_title(self) -> bytes | None:
        return self._server_title

    @property
    def server_invocation_counter(self) -> int | None:
        """The last invocation counter accepted from the server (persist it for the replay check)."""
        return self._server_counter

    # --- local calls -----------------------------------------------------------------------------

    def associate(self) -> None:
        """Queue the AARQ."""
        self._local(_Associate())

    def get(
        self, descriptor: CosemAttributeDescriptor, access_selection: SelectiveAccessDescriptor | None = None
    ) -> int:
        """Queue a GET-Request-Normal; returns its invoke id."""
        self._require(_Request)
        self._need(Conformance.GET, "GET")
        if access_selection is not None:
            self._need(Conformance.SELECTIVE_ACCESS, "selective access")
        iip = self._next_invoke_id()
        apdu = GetRequestNormal(iip, descriptor, access_selection).encode()
        self._check_fits(apdu)
        return self._start(_Pending(_Service.GET, iip, [apdu]))

    def get_with_list(self, items: Sequence[CosemAttributeDescriptorWithSelection]) -> int:
        """Queue a GET-Request-With-List; returns its invoke id."""
        self._require(_Request)
        self._need(Conformance.GET, "GET")
        self._need(Conformance.MULTIPLE_REFERENCES, "GET with list")
        if any(item.access_selection is not None for item in items):
            self._need(Conformance.SELECTIVE_ACCESS, "selective access")
        iip = self._next_invoke_id()
        apdu = GetRequestWithList(iip, tuple(items)).encode()
        self._check_fits(apdu)
        return self._start(_Pending(_Service.GET_WITH_LIST, iip, [apdu]))

    def set(
        self,
        descriptor: CosemAttributeDescriptor,
        value: bytes,
        access_selection: SelectiveAccessDescriptor | None = None,
    ) -> int:
        """Queue a SET of ``value`` (encoded ``Data``), in datablocks when it is too large."""
        self._require(_Request)
        self._need(Conformance.SET, "SET")
        if access_selection is not None:
            self._need(Conformance.SELECTIVE_ACCESS, "selective access")
        iip = self._next_invoke_id()
        apdu = SetRequestNormal(iip, descriptor, value, access_selection).encode()
        if self._fits(apdu):
            return self._start(_Pending(_Service.SET, iip, [apdu]))
        self._need(Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE, f"a SET of {len(apdu)} bytes (blocks)")
        head = SetRequestWithFirstDatablock(iip, descriptor, DataBlockSA(False, 1, b""), access_selection)
        chunks = self._chunks(value, len(head.encode()))
        apdus = [
            SetRequestWithFirstDatablock(
                iip, descriptor, DataBlockSA(len(chunks) == 1, 1, chunks[0]), access_selection
            ).encode()
        ]
        apdus += [
            SetRequestWithDatablock(iip, DataBlockSA(number == len(chunks), number, chunk)).encode()
            for number, chunk in enumerate(chunks[1:], start=2)
        ]
        return self._start(_Pending(_Service.SET, iip, apdus))

    def action(self, descriptor: CosemMethodDescriptor, parameters: bytes | None = None) -> int:
        """Queue an ACTION with ``parameters`` (encoded ``Data``), in pblocks when too large."""
        self._require(_Request)
        self._need(Conformance.ACTION, "ACTION")
        iip = self._next_invoke_id()
        apdu = ActionRequestNormal(iip, descriptor, parameters).encode()
        if self._fits(apdu) or parameters is None:
            self._check_fits(apdu)
            return self._start(_Pending(_Service.ACTION, iip, [apdu]))
        self._need(Conformance.BLOCK_TRANSFER_WITH_ACTION, f"an ACTION of {len(apdu)} bytes (blocks)")
        head = ActionRequestWithFirstPblock(iip, descriptor, DataBlockSA(False, 1, b""))
        chunks = self._chunks(parameters, len(head.encode()))
        apdus = [
            ActionRequestWithFirstPblock(
                iip, descriptor, DataBlockSA(len(chunks) == 1, 1, chunks[0])
            ).encode()
        ]
        apdus += [
            ActionRequestWithPblock(iip, DataBlockSA(number == len(chunks), number, chunk)).encode()
            for number, chunk in enumerate(chunks[1:], start=2)
        ]
        return self._start(_Pending(_Service.ACTION, iip, apdus))

    def release(self) -> None:
        """Queue the RLRQ (with a ciphered InitiateRequest in a ciphered context)."""
        self._local(_Release())

    def cancel_request(self) -> None:
        """Forget the outstanding request (e.g. after a timeout); its answer will be refused."""
        self._local(_Cancel())

    def reset(self) -> None:
        """The link below went down: back to IDLE, whatever the state (counters are kept)."""
        self._local(_Reset())

    # --- input from the server -------------------------------------------------------------------

    def receive_apdu(self, apdu: bytes) -> list[Event]:
        """Take one whole APDU from the server; returns the events it produced."""
        self._run(self._classify(apdu))
        return self._take_events()

    def _classify(self, data: bytes) -> object:
        try:
            return self._decode(bytes(data))
        except SecurityError as exc:
            return Unauthentic(exc)
        except DlmsError as exc:
            return Undecodable(exc)
        except (ValueError, IndexError, TypeError) as exc:
            return Undecodable(DecodeError(f"malformed APDU: {exc}"))

    def _decode(self, apdu: bytes) -> object:
        if not apdu:
            raise DecodeError("empty APDU", 0)
        if apdu[0] == XdlmsTag.GATEWAY_RESPONSE:
            apdu = self._unwrap_gateway(decode_gateway_response(apdu))
        if apdu[0] in (AARQ_TAG, AARE_TAG, RLRQ_TAG, RLRE_TAG):
            return decode_acse_apdu(apdu)
        ciphered = is_ciphered_tag(apdu[0])
        if ciphered:
            if self._keys is None:
                raise SecurityError("a ciphered APDU, but this association has no keys")
            deciphered = unprotect(
                apdu,
                keys=self._keys,
                peer_system_title=self._server_title,
                required_security_control=self._policy.security_control,
                last_counter=self._server_counter,
            )
            # The tag checked out: the counter is the server's, whatever the state makes of it.
            self._server_counter = deciphered.invocation_counter
            apdu = deciphered.plain
        message = decode_xdlms_apdu(apdu)
        if self._policy.ciphered and not ciphered and not isinstance(message, _PLAIN_ALLOWED):
            raise SecurityError(f"{type(message).__name__} arrived unciphered in a ciphered context")
        return message

    def _unwrap_gateway(self, response: GatewayResponse) -> bytes:
        gateway = self._config.gateway
        if gateway is None:
            raise DecodeError("a gateway-response, but no gateway is configured")
        if (response.network_id, response.physical_device_address) != (
            gateway.network_id,
            gateway.physical_device_address,
        ):
            raise DecodeError(
                f"gateway-response from network {response.network_id} address "
                f"{response.physical_device_address.hex()}, not the configured meter"
            )
        if not response.apdu:
            raise DecodeError("gateway-response carries no APDU")
        return response.apdu

    def _pending_invoke_id(self) -> int | None:
        return self._pending.invoke_id if self._pending is not None else None

    def _run(self, message: object) -> None:
        pending = self._pending
        iip = getattr(message, "invoke_id_and_priority", None)
        if (
            pending is not None
            and isinstance(message, _RESPONSE_TYPES)
            and isinstance(iip, InvokeIdAndPriority)
            and iip.invoke_id != pending.invoke_id
        ):
            # A late answer to a request given up on: not an answer to the outstanding one.
            self._emit(
                RemoteProtocolError(
                    StateError(f"response for invoke id {iip.invoke_id}, {pending.invoke_id} is outstanding")
                )
            )
            return
        super()._run(message)

    def _enter(self, state: Enum) -> None:
        if state not in (ClientState.AWAITING_RESPONSE, ClientState.AWAITING_HLS_REPLY):
            self._pending = None
        super()._enter(state)

    # --- helpers for requests ----------------------------------------------------------------------

    def _need(self, bit: Conformance, what: str) -> None:
        if not int(self._conformance) & int(bit):  # plain ints: Flag's own & builds a member
            raise StateError(f"{what} needs conformance {bit.name}, which the server did not grant")

    def _next_invoke_id(self) -> InvokeIdAndPriority:
        return InvokeIdAndPriority((self._invoke_id + 1) & 0x0F)

    def _overhead(self) -> int:
        return _CIPHER_OVERHEAD[self._policy.ciphering]

    def _fits(self, apdu: bytes) -> bool:
        return len(apdu) + self._overhead() <= self._server_max_pdu

    def _check_fits(self, apdu: bytes) -> None:
        if not self._fits(apdu):
            raise StateError(
                f"a request of {len(apdu)} bytes exceeds the server's max receive PDU size "
                f"{self._server_max_pdu}"
            )

    def _chunks(self, raw: bytes, header_size: int) -> list[bytes]:
        size = self._server_max_pdu - self._overhead() - header_size - _LENGTH_GROWTH
        if size < 1:
            raise StateError(
                f"the server's max receive PDU size {self._server_max_pdu} leaves no room for data"
            )
        return [raw[i : i + size] for i in range(0, len(raw), size)] or [b""]

    def _start(self, pending: _Pending) -> int:
        self._local(_Request(pending))
        return pending.invoke_id

    def _protection(self) -> Protection:
        dedicated = self._policy.dedicated_key is not None
        if self._policy.ciphering is CipheringMode.SERVICE_SPECIFIC:
            return Protection.DED if dedicated else Protection.GLO
        if self._policy.ciphering is CipheringMode.GENERAL:
            return Protection.GENERAL_DED if dedicated else Protection.GENERAL_GLO
        return Protection.PLAIN

    def _send(self, plain: bytes) -> None:
        apdu = plain
        if self._policy.ciphered:
            apdu = self._cipher(plain, self._protection())
        self._queue(apdu)

    def _cipher(self, plain: bytes, protection: Protection) -> bytes:
        policy = self._policy
        if self._keys is None or policy.system_title is None:
            raise SecurityError("ciphering needs keys and a system title")
        return protect(
            plain,
            protection,
            keys=self._keys,
            system_title=policy.system_title,
            invocation_counter=self._consume_counter(),
            security_control=policy.security_control,
        )

    def _queue(self, apdu: bytes) -> None:
        gateway = self._config.gateway
        if gateway is not None:
            apdu = GatewayRequest(gateway.network_id, gateway.physical_device_address, apdu).encode()
        self._outgoing.append(apdu)

    def _send_next(self, pending: _Pending) -> None:
        self._send(pending.apdus[pending.sent])
        pending.sent += 1

    def _initiate_request(self) -> UserInformation:
        request = InitiateRequest(
            self._config.proposed_conformance,
            client_max_receive_pdu_size=self._config.max_receive_pdu_size,
            dedicated_key=self._policy.dedicated_key,
        )
        if not self._policy.ciphered:
            return request
        return ServiceSpecificCipheredApdu.decode(self._cipher(request.encode(), Protection.GLO))

    def _read_initiate_response(self, info: UserInformation | None) -> InitiateResponse:
        if isinstance(info, InitiateResponse):
            if self._policy.ciphered:
                raise SecurityError("the InitiateResponse arrived unciphered in a ciphered context")
            return info
        if info is None or isinstance(info, InitiateRequest | InitiateServiceError):
            raise DecodeError("the AARE carries no InitiateResponse")
        if self._keys is None:
            raise SecurityError("a ciphered InitiateResponse, but this association has no keys")
        deciphered = unprotect(
            info.encode(),
            keys=self._keys,
            peer_system_title=self._server_title,
            required_security_control=self._policy.security_control,
            last_counter=self._server_counter,
        )
        self._server_counter = deciphered.invocation_counter
        return InitiateResponse.decode(deciphered.plain)

    # --- handlers (one per row of the table) ---------------------------------------------------------

    def _do_associate(self, _: _Associate) -> ClientState:
        policy = self._policy
        mechanism = policy.mechanism
        value: bytes | None = None
        if mechanism is MechanismName.LLS:
            value = policy.password
        elif mechanism is MechanismName.HLS_GMAC:
            value = self._config.client_challenge
        aarq = Aarq(
            application_context_name=(
                ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING
                if policy.ciphered
                else ApplicationContextName.LOGICAL_NAME
            ),
            calling_ap_title=policy.system_title if policy.uses_system_titles else None,
            sender_acse_requirements=mechanism is not MechanismName.NONE,
            mechanism_name=None if mechanism is MechanismName.NONE else mechanism,
            calling_authentication_value=value,
            user_information=self._initiate_request(),
        )
        self._conformance = Conformance(0)
        self._server_max_pdu = 0
        self._queue(aarq.encode())
        return ClientState.AWAITING_AARE

    def _on_aare(self, aare: Aare) -> ClientState:
        if aare.result != AssociationResult.ACCEPTED:
            info = aare.user_information
            error = info if isinstance(info, InitiateServiceError) else None
            self._emit(
                AssociationRejected(
                    aare.result, int(aare.diagnostic), aare.result_source,
                    None if error is None else error.value, error,
                )
            )
            return ClientState.IDLE
        title = aare.responding_ap_title
        expected = self._config.server_system_title
        if title is not None and expected is not None and title != expected:
            raise SecurityError(f"the AARE names system title {title.hex()}, expected {expected.hex()}")
        self._server_title = title if title is not None else expected
        if self._policy.uses_system_titles and self._server_title is None:
            raise SecurityError("the server's system title is neither configured nor in the AARE")
        response = self._read_initiate_response(aare.user_information)
        self._conformance = response.negotiated_conformance
        # 0 is read as "no limit"; below the smallest useful APDU is read as a broken AARE.
        size = response.server_max_receive_pdu_size or 0xFFFF
        if size < 12:
            raise DecodeError(f"server max receive PDU size {size} is too small")
        self._server_max_pdu = size
        if self._policy.mechanism is not MechanismName.HLS_GMAC:
            self._emit(Associated(self._conformance, self._server_max_pdu, self._server_title))
            return ClientState.READY
        stoc = aare.responding_authentication_value
        if aare.diagnostic != AcseServiceUserDiagnostic.AUTHENTICATION_REQUIRED or not stoc:
            raise SecurityError("HLS-GMAC, but the AARE does not ask for authentication with a challenge")
        self._send_hls_reply(stoc)
        return ClientState.AWAITING_HLS_REPLY

    def _send_hls_reply(self, stoc: bytes) -> None:
        policy = self._policy
        if self._keys is None or policy.system_title is None:
            raise SecurityError("HLS-GMAC needs keys and a system title")
        f_stoc = hls_gmac_response(
            stoc,
            system_title=policy.system_title,
            invocation_counter=self._consume_counter(),
            encryption_key=self._keys.encryption_key,
            authentication_key=self._keys.authentication_key,
            security_control=_HLS_SECURITY_CONTROL,
        )
        iip = self._next_invoke_id()
        parameters = axdr.encode_data(Data.octet_string(f_stoc))
        apdu = ActionRequestNormal(iip, REPLY_TO_HLS_AUTHENTICATION, parameters).encode()
        pending = _Pending(_Service.HLS, iip, [apdu])
        self._invoke_id = iip.invoke_id
        self._send_next(pending)
        self._pending = pending

    def _on_hls_reply(self, response: ActionResponseNormal) -> ClientState:
        outcome = response.response
        if outcome.result != ActionResultCode.SUCCESS:
            raise SecurityError(f"the server refused f(StoC): {outcome.result.name.lower()}")
        returned = outcome.return_parameters
        if not isinstance(returned, bytes):
            raise SecurityError("the server returned no f(CtoS)")
        data = axdr.decode_data_exact(returned)
        if data.tag != DataTag.OCTET_STRING:
            raise SecurityError("f(CtoS) is not an octet-string")
        if self._keys is None or self._server_title is None or self._config.client_challenge is None:
            raise SecurityError("HLS-GMAC needs keys, the server's system title and the challenge")
        verify_hls_gmac_response(
            data.value,
            self._config.client_challenge,
            system_title=self._server_title,
            encryption_key=self._keys.encryption_key,
            authentication_key=self._keys.authentication_key,
        )
        self._emit(Associated(self._conformance, self._server_max_pdu, self._server_title))
        return ClientState.READY

    def _on_association_error(self, message: ExceptionResponse | ConfirmedServiceError) -> ClientState:
        self._emit_error(message, self._pending_invoke_id())
        return ClientState.IDLE

    def _do_request(self, request: _Request) -> ClientState:
        self._invoke_id = request.pending.invoke_id
        self._send_next(request.pending)
        self._pending = request.pending
        return ClientState.AWAITING_RESPONSE

    def _do_release(self, _: _Release) -> ClientState:
        info = self._initiate_request() if self._policy.ciphered else None
        self._queue(Rlrq(ReleaseRequestReason.NORMAL, info).encode())
        return ClientState.AWAITING_RLRE

    def _do_cancel(self, _: _Cancel) -> ClientState:
        return ClientState.READY

    def _do_reset(self, _: _Reset) -> ClientState:
        self._conformance = Conformance(0)
        self._server_max_pdu = 0
        return ClientState.IDLE

    def _on_rlre(self, rlre: Rlre) -> ClientState:
        info = rlre.user_information
        self._emit(Released(rlre.reason))
        plain = InitiateResponse | InitiateRequest | InitiateServiceError
        if info is not None and not isinstance(info, plain):
            try:
                self._read_initiate_response(info)
            except SecurityError as exc:
                # The association is gone either way; say that the RLRE was not authentic.
                self._emit(SecurityFailure(exc))
        return ClientState.IDLE

    def _current(self, service: _Service | tuple[_Service, ...]) -> _Pending:
        pending = self._pending
        services = service if isinstance(service, tuple) else (service,)
        if pending is None or pending.service not in services:
            raise StateError(
                f"an answer for {'/'.join(s.value for s in services)}, but "
                f"{'nothing' if pending is None else pending.service.value} is outstanding"
            )
        return pending

    def _on_get_normal(self, response: GetResponseNormal) -> ClientState:
        pending = self._current(_Service.GET)
        self._emit(GetResult(pending.invoke_id, response.result))
        return ClientState.READY

    def _on_get_list(self, response: GetResponseWithList) -> ClientState:
        pending = self._current(_Service.GET_WITH_LIST)
        self._emit(GetWithListResult(pending.invoke_id, response.results))
        return ClientState.READY

    def _on_get_block(self, response: GetResponseWithDatablock) -> ClientState:
        pending = self._current((_Service.GET, _Service.GET_WITH_LIST))
        if isinstance(response.result, DataAccessResult):
            if pending.service is _Service.GET_WITH_LIST:
                self._emit(GetWithListResult(pending.invoke_id, (response.result,)))
            else:
                self._emit(GetResult(pending.invoke_id, response.result))
            return ClientState.READY
        expected = len(pending.blocks) + 1
        if response.block_number != expected:
            raise DecodeError(f"GET datablock {response.block_number}, expected {expected}")
        pending.blocks.append(response.result)
        if not response.last_block:
            self._send(GetRequestNext(pending.invoke_id_and_priority, response.block_number).encode())
            return ClientState.AWAITING_RESPONSE
        raw = b"".join(pending.blocks)
        if pending.service is _Service.GET_WITH_LIST:
            results = decode_entry(lambda r: read_sequence(r, _read_list_result, 2), raw)
            self._emit(GetWithListResult(pending.invoke_id, results))
        else:
            if axdr.skip_data(raw, 0) != len(raw):
                raise DecodeError("the joined datablocks hold more than one Data")
            self._emit(GetResult(pending.invoke_id, raw))
        return ClientState.READY

    def _on_set_result(self, response: SetResponseNormal | SetResponseLastDatablock) -> ClientState:
        pending = self._current(_Service.SET)
        self._emit(SetResult(pending.invoke_id, response.result))
        return ClientState.READY

    def _on_set_block_ack(self, response: SetResponseDatablock) -> ClientState:
        pending = self._current(_Service.SET)
        return self._next_block(pending, response.block_number)

    def _on_action_result(self, response: ActionResponseNormal) -> ClientState:
        pending = self._current(_Service.ACTION)
        outcome = response.response
        self._emit(ActionResult(pending.invoke_id, outcome.result, outcome.return_parameters))
        return ClientState.READY

    def _on_action_block_ack(self, response: ActionResponseNextPblock) -> ClientState:
        pending = self._current(_Service.ACTION)
        return self._next_block(pending, response.block_number)

    def _next_block(self, pending: _Pending, acknowledged: int) -> ClientState:
        if acknowledged != pending.sent or pending.sent >= len(pending.apdus):
            raise DecodeError(f"acknowledgement of block {acknowledged}; block {pending.sent} was sent last")
        self._send_next(pending)
        return ClientState.AWAITING_RESPONSE

    def _on_unexpected_response(self, response: object) -> ClientState:
        raise StateError(f"{type(response).__name__} does not answer the outstanding request")

    def _on_gbt(self, block: GeneralBlockTransfer) -> ClientState:
        pending = self._current(tuple(_Service))
        if pending.gbt is None:
            pending.gbt = GbtReceiver()
        for ack in pending.gbt.receive(block):
            self._queue(ack.encode())
        if not pending.gbt.complete:
            return ClientState.AWAITING_RESPONSE
        inner = pending.gbt.apdu()
        pending.gbt = None
        message = self._decode(inner)
        if isinstance(message, GeneralBlockTransfer):
            raise DecodeError("a general block transfer inside a general block transfer")
        iip = getattr(message, "invoke_id_and_priority", None)
        if isinstance(iip, InvokeIdAndPriority) and iip.invoke_id != pending.invoke_id:
            raise StateError(f"response for invoke id {iip.invoke_id}, {pending.invoke_id} is outstanding")
        transition = self._TABLE.get((ClientState.AWAITING_RESPONSE, type(message)))
        if transition is None:
            raise StateError(f"{type(message).__name__} does not answer the outstanding request")
        return transition.handler(self, message)  # type: ignore[return-value]

    def _on_exception(self, message: ExceptionResponse | ConfirmedServiceError) -> ClientState:
        self._emit_error(message, self._pending_invoke_id())
        return ClientState.READY

    def _on_unsolicited_error(self, message: ExceptionResponse | ConfirmedServiceError) -> ClientState:
        self._emit_error(message, None)
        return self.state

    def _emit_error(self, message: ExceptionResponse | ConfirmedServiceError, invoke_id: int | None) -> None:
        if isinstance(message, ExceptionResponse):
            self._emit(ExceptionReceived(invoke_id, message))
        else:
            self._emit(ConfirmedServiceErrorReceived(invoke_id, message))

    def _on_notification(self, message: DataNotification | EventNotificationRequest) -> ClientState:
        self._emit(NotificationReceived(message))
        return self.state

    def _on_bad_input(self, message: Undecodable | Unauthentic) -> ClientState:
        invoke_id = self._pending_invoke_id()
        if isinstance(message, Unauthentic):
            self._emit(SecurityFailure(message.error, invoke_id))
        else:
            self._emit(RemoteProtocolError(message.error, invoke_id))
        return _AFTER_BAD_INPUT[self.state]


def _read_list_result(r: Reader) -> bytes | DataAccessResult:
    return read_result(r, tail=False)


# What a peer's undecodable or unauthentic APDU ends: the exchange that was awaited.
_AFTER_BAD_INPUT = {
    ClientState.IDLE: ClientState.IDLE,
    ClientState.AWAITING_AARE: ClientState.IDLE,
    ClientState.AWAITING_HLS_REPLY: ClientState.IDLE,
    ClientState.READY: ClientState.READY,
    ClientState.AWAITING_RESPONSE: ClientState.READY,
    ClientState.AWAITING_RLRE: ClientState.IDLE,
}

_S = ClientState
_C = ClientAssociation
_ALL = tuple(ClientState)
_ERRORS = (ExceptionResponse, ConfirmedServiceError)
_NOTIFICATIONS = (DataNotification, EventNotificationRequest)

#: Every transition of the client: (state, input type) -> handler, the states it may lead to, and
#: the state entered when the handler fails on the server's input. Anything else from the server
#: is a RemoteProtocolError event; anything else from the caller a StateError.
_TRANSITIONS: dict[tuple[Enum, type], Transition] = {
    # local calls
    (_S.IDLE, _Associate): row(_C._do_associate, _S.AWAITING_AARE),
    (_S.READY, _Request): row(_C._do_request, _S.AWAITING_RESPONSE),
    (_S.READY, _Release): row(_C._do_release, _S.AWAITING_RLRE),
    (_S.AWAITING_RESPONSE, _Cancel): row(_C._do_cancel, _S.READY),
    **{(state, _Reset): row(_C._do_reset, _S.IDLE) for state in _ALL},
    # association
    (_S.AWAITING_AARE, Aare): row(_C._on_aare, _S.IDLE, _S.READY, _S.AWAITING_HLS_REPLY, on_error=_S.IDLE),
    **{(_S.AWAITING_AARE, kind): row(_C._on_association_error, _S.IDLE) for kind in _ERRORS},
    (_S.AWAITING_HLS_REPLY, ActionResponseNormal): row(_C._on_hls_reply, _S.READY, on_error=_S.IDLE),
    **{(_S.AWAITING_HLS_REPLY, kind): row(_C._on_association_error, _S.IDLE) for kind in _ERRORS},
    # responses to the outstanding request
    (_S.AWAITING_RESPONSE, GetResponseNormal): row(_C._on_get_normal, _S.READY, on_error=_S.READY),
    (_S.AWAITING_RESPONSE, GetResponseWithList): row(_C._on_get_list, _S.READY, on_error=_S.READY),
    (_S.AWAITING_RESPONSE, GetResponseWithDatablock): row(
        _C._on_get_block, _S.READY, _S.AWAITING_RESPONSE, on_error=_S.READY
    ),
    (_S.AWAITING_RESPONSE, SetResponseNormal): row(_C._on_set_result, _S.READY, on_error=_S.READY),
    (_S.AWAITING_RESPONSE, SetResponseLastDatablock): row(_C._on_set_result, _S.READY, on_error=_S.READY),
    (_S.AWAITING_RESPONSE, SetResponseDatablock): row(
        _C._on_set_block_ack, _S.AWAITING_RESPONSE, on_error=_S.READY
    ),
    (_S.AWAITING_RESPONSE, ActionResponseNormal): row(_C._on_action_result, _S.READY, on_error=_S.READY),
    (_S.AWAITING_RESPONSE, ActionResponseNextPblock): row(
        _C._on_action_block_ack, _S.AWAITING_RESPONSE, on_error=_S.READY
    ),
    **{
        (_S.AWAITING_RESPONSE, kind): row(_C._on_unexpected_response, _S.READY, on_error=_S.READY)
        for kind in (
            SetResponseWithList,
            SetResponseLastDatablockWithList,
            ActionResponseWithList,
            ActionResponseWithPblock,
        )
    },
    (_S.AWAITING_RESPONSE, GeneralBlockTransfer): row(
        _C._on_gbt, _S.READY, _S.AWAITING_RESPONSE, on_error=_S.READY
    ),
    **{(_S.AWAITING_RESPONSE, kind): row(_C._on_exception, _S.READY) for kind in _ERRORS},
    **{(_S.READY, kind): row(_C._on_unsolicited_error, _S.READY) for kind in _ERRORS},
    # release
    (_S.AWAITING_RLRE, Rlre): row(_C._on_rlre, _S.IDLE, on_error=_S.IDLE),
    # pushes may come at any time, also outside an association (pre-established push setups)
    **{(state, kind): row(_C._on_notification, state) for state in _ALL for kind in _NOTIFICATIONS},
    # bad input from the server
    **{
        (state, kind): row(_C._on_bad_input, _AFTER_BAD_INPUT[state])
        for state in _ALL
        for kind in (Undecodable, Unauthentic)
    },
}
ClientAssociation._TABLE = _TRANSITIONS
