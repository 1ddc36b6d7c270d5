"""The server side of a DLMS/COSEM association (a meter's logical device): a sans-IO object over APDUs."""

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
    ReleaseResponseReason,
    Rlre,
    Rlrq,
    UserInformation,
    decode_acse_apdu,
)
from protocols.association._machine import Machine, Transition, Unauthentic, Undecodable, row
from protocols.association._protection import (
    Protection,
    ReplayError,
    SecretKeys,
    protect,
    unprotect,
)
from protocols.association.client import REPLY_TO_HLS_AUTHENTICATION
from protocols.association.config import MAX_INVOCATION_COUNTER, CipheringMode, ServerConfig
from protocols.association.events import (
    ActionRequested,
    Associated,
    AssociationRejected,
    Event,
    GetRequested,
    GetWithListRequested,
    Released,
    RemoteProtocolError,
    SecurityFailure,
    SetRequested,
)
from protocols.axdr import Data, DataTag
from protocols.errors import DecodeError, DlmsError, SecurityError, StateError
from protocols.security import (
    SECURITY_HEADER_SIZE,
    TAG_SIZE,
    ServiceSpecificCipheredApdu,
    hls_gmac_response,
    is_ciphered_tag,
    lls_password_matches,
    verify_hls_gmac_response,
)
from protocols.xdlms.action import (
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPblock,
    ActionRequestWithPblock,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithOptionalData,
)
from protocols.xdlms.apdu import decode_xdlms_apdu
from protocols.xdlms.common import (
    ActionResult,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
)
from protocols.xdlms.conformance import Conformance, negotiate_conformance
from protocols.xdlms.errors import ExceptionResponse, ExceptionServiceError, ExceptionStateError
from protocols.xdlms.get import (
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
)
from protocols.xdlms.initiate import (
    DLMS_VERSION,
    ConfirmedServiceErrorChoice,
    InitiateError,
    InitiateRequest,
    InitiateResponse,
    ServiceErrorChoice,
)
from protocols.xdlms.initiate import ConfirmedServiceError as InitiateServiceError
from protocols.xdlms.notification import DataNotification, EventNotificationRequest
from protocols.xdlms.set import (
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetRequestWithList,
    SetRequestWithListAndFirstDatablock,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseNormal,
)

__all__ = ["ServerAssociation", "ServerState"]

_CIPHER_OVERHEAD = {
    Protection.PLAIN: 0,
    Protection.GLO: 1 + 3 + SECURITY_HEADER_SIZE + TAG_SIZE,
    Protection.DED: 1 + 3 + SECURITY_HEADER_SIZE + TAG_SIZE,
    Protection.GENERAL_GLO: 1 + 1 + 8 + 3 + SECURITY_HEADER_SIZE + TAG_SIZE,
    Protection.GENERAL_DED: 1 + 1 + 8 + 3 + SECURITY_HEADER_SIZE + TAG_SIZE,
}
_LENGTH_GROWTH = 2
_APPLICATION_REFERENCE_DECIPHERING_ERROR = 6


class ServerState(Enum):
    IDLE = "idle"
    AWAITING_HLS_REPLY = "awaiting reply_to_HLS_authentication"
    READY = "ready"
    PENDING = "awaiting the application's answer"
    SENDING_GET_BLOCKS = "sending GET datablocks"
    RECEIVING_SET_BLOCKS = "receiving SET datablocks"
    RECEIVING_ACTION_BLOCKS = "receiving ACTION pblocks"


class _Service(Enum):
    GET = "get"
    GET_WITH_LIST = "get-with-list"
    SET = "set"
    ACTION = "action"


@dataclass(slots=True)
class _Pending:
    """The request being served: its blocks in, or the response blocks still to send out."""

    service: _Service
    invoke_id_and_priority: InvokeIdAndPriority
    blocks: list[bytes] = field(default_factory=list)
    first: object = None
    sent: int = 0

    @property
    def invoke_id(self) -> int:
        return self.invoke_id_and_priority.invoke_id


# Local calls, as types for the transition table.
@dataclass(frozen=True, slots=True)
class _Respond:
    service: _Service
    invoke_id: int
    payload: object


@dataclass(frozen=True, slots=True)
class _Notify:
    notification: DataNotification | EventNotificationRequest


@dataclass(frozen=True, slots=True)
class _Oversized:
    """A request longer than this server's max receive PDU size (a pseudo-APDU type)."""

    size: int


_REQUESTS = (
    GetRequestNormal,
    GetRequestNext,
    GetRequestWithList,
    SetRequestNormal,
    SetRequestWithFirstDatablock,
    SetRequestWithDatablock,
    SetRequestWithList,
    SetRequestWithListAndFirstDatablock,
    ActionRequestNormal,
    ActionRequestNextPblock,
    ActionRequestWithList,
    ActionRequestWithFirstPblock,
    ActionRequestWithListAndFirstPblock,
    ActionRequestWithPblock,
)


class ServerAssociation(Machine):
    """One association of a server (logical device) with one client SAP, h11-style.

    ``receive_apdu()`` takes one whole APDU from the client and returns events: the AARQ and
    reply_to_HLS_authentication are answered here, requests become ``GetRequested``,
    ``SetRequested`` (blocks joined) and ``ActionRequested`` for the application, which answers
    with ``respond_get`` / ``respond_set`` / ``respond_action``; long GET answers go out in
    datablocks, one per GET-Request-Next. Replies are ciphered the way the request was.
    """

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(ServerState.IDLE, config.invocation_counter, config.counter_used)
        self._config = config
        self._policy = config.policy
        policy = config.policy
        self._global_keys = (
            SecretKeys(policy.encryption_key, policy.authentication_key)
            if policy.encryption_key is not None and policy.authentication_key is not None
            else None
        )
        self._keys = self._global_keys
        self._client_counter = config.client_invocation_counter
        self._client_title: bytes | None = None
        self._client_challenge: bytes | None = None
        self._conformance = Conformance(0)
        self._client_max_pdu = 0
        self._protection = Protection.PLAIN
        self._pending: _Pending | None = None

    # --- what the caller can read ----------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self._state  # type: ignore[return-value]

    @property
    def conformance(self) -> Conformance:
        return self._conformance

    @property
    def client_max_receive_pdu_size(self) -> int:
        return self._client_max_pdu

    @property
    def client_system_title(self) -> bytes | None:
        return self._client_title

    @property
    def client_invocation_counter(self) -> int | None:
        """The last invocation counter accepted from the client (persist it for the replay check)."""
        return self._client_counter

    # --- the application's answers ----------------------------------------------------------------

    def respond_get(self, invoke_id: int, data: bytes | DataAccessResult) -> None:
        """Answer a ``GetRequested`` with encoded ``Data`` or an error."""
        self._local(_Respond(_Service.GET, invoke_id, data))

    def respond_get_with_list(self, invoke_id: int, results: Sequence[bytes | DataAccessResult]) -> None:
        self._local(_Respond(_Service.GET_WITH_LIST, invoke_id, tuple(results)))

    def respond_exception(self, invoke_id: int, state: ExceptionStateError, service: ExceptionServiceError) -> None:
        """Answer the pending request (whatever its service) with an ExceptionResponse: a device refusing
        what it was asked as a whole (a GET-with-list longer than it serves, say)."""
        pending = self._pending.service if self._pending is not None else _Service.GET
        self._local(_Respond(pending, invoke_id, ExceptionResponse(state, service)))

    def respond_set(self, invoke_id: int, result: DataAccessResult) -> None:
        self._local(_Respond(_Service.SET, invoke_id, result))

    def respond_action(
        self, invoke_id: int, result: ActionResult, data: bytes | DataAccessResult | None = None
    ) -> None:
        self._local(_Respond(_Service.ACTION, invoke_id, ActionResponseWithOptionalData(result, data)))

    def send_notification(self, notification: DataNotification | EventNotificationRequest) -> None:
        """Queue a push, ciphered per policy (data-notification goes in general-glo-ciphering)."""
        self._local(_Notify(notification))

    # --- input from the client ---------------------------------------------------------------------

    def receive_apdu(self, apdu: bytes) -> list[Event]:
        """Take one whole APDU from the client; returns the events it produced."""
        self._run(self._classify(apdu))
        return self._take_events()

    def _classify(self, data: bytes) -> object:
        try:
            apdu = bytes(data)
            if self.state is not ServerState.IDLE and len(apdu) > self._config.max_receive_pdu_size:
                return _Oversized(len(apdu))
            return self._decode(apdu)
        except SecurityError as exc:
            return Unauthentic(exc)
        except DlmsError as exc:
            return Undecodable(exc)
        except (ValueError, IndexError, TypeError) as exc:
            return Undecodable(DecodeError(f"malformed APDU: {exc}"))

    def _decode(self, apdu: bytes) -> object:
        if not apdu:
            raise DecodeError("empty APDU", 0)
        if apdu[0] in (AARQ_TAG, AARE_TAG, RLRQ_TAG, RLRE_TAG):
            return decode_acse_apdu(apdu)
        protection = Protection.PLAIN
        if is_ciphered_tag(apdu[0]):
            if self._keys is None:
                raise SecurityError("a ciphered APDU, but this association has no keys")
            deciphered = unprotect(
                apdu,
                keys=self._keys,
                peer_system_title=self._client_title,
                required_security_control=self._policy.security_control,
                last_counter=self._client_counter,
            )
            self._client_counter = deciphered.invocation_counter
            protection = deciphered.protection
            apdu = deciphered.plain
        elif self._policy.ciphered:
            message = decode_xdlms_apdu(apdu)
            raise SecurityError(f"{type(message).__name__} arrived unciphered in a ciphered context")
        message = decode_xdlms_apdu(apdu)
        self._protection = protection
        return message

    def _pending_invoke_id(self) -> int | None:
        return self._pending.invoke_id if self._pending is not None else None

    def _enter(self, state: Enum) -> None:
        if state in (ServerState.IDLE, ServerState.READY, ServerState.AWAITING_HLS_REPLY):
            self._pending = None
        super()._enter(state)

    def _refuse(self, message: object) -> None:
        super()._refuse(message)
        if isinstance(message, _REQUESTS):
            self._exception(
                ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.OPERATION_NOT_POSSIBLE
            )

    # --- helpers --------------------------------------------------------------------------------------

    def _exception(
        self, state: ExceptionStateError, service: ExceptionServiceError, counter: int | None = None
    ) -> None:
        # Sent plain: the client may not be able to decipher anything if keys or counters are off.
        self._outgoing.append(ExceptionResponse(state, service, counter).encode())

    def _reply(self, plain: bytes, protection: Protection | None = None) -> None:
        protection = self._protection if protection is None else protection
        if protection is Protection.PLAIN:
            self._outgoing.append(plain)
            return
        policy = self._policy
        if self._keys is None or policy.system_title is None:
            raise SecurityError("ciphering needs keys and a system title")
        self._outgoing.append(
            protect(
                plain,
                protection,
                keys=self._keys,
                system_title=policy.system_title,
                invocation_counter=self._consume_counter(),
                security_control=policy.security_control,
            )
        )

    def _policy_protection(self) -> Protection:
        dedicated = self._keys is not None and self._keys.dedicated_key is not None
        if self._policy.ciphering is CipheringMode.SERVICE_SPECIFIC:
            return Protection.DED if dedicated else Protection.GLO
        if self._policy.ciphering is CipheringMode.GENERAL:
            return Protection.GENERAL_DED if dedicated else Protection.GENERAL_GLO
        return Protection.PLAIN

    def _fits(self, apdu: bytes) -> bool:
        return len(apdu) + _CIPHER_OVERHEAD[self._protection] <= self._client_max_pdu

    def _chunks(self, raw: bytes, header_size: int) -> list[bytes]:
        size = self._client_max_pdu - _CIPHER_OVERHEAD[self._protection] - header_size - _LENGTH_GROWTH
        if size < 1:
            raise StateError(f"the client's max receive PDU size {self._client_max_pdu} leaves no room")
        return [raw[i : i + size] for i in range(0, len(raw), size)] or [b""]

    def _granted(self, *bits: Conformance) -> bool:
        if all(self._conformance & bit for bit in bits):
            return True
        self._emit(RemoteProtocolError(StateError(f"a service that needs {bits}, not granted")))
        self._exception(ExceptionStateError.SERVICE_UNKNOWN, ExceptionServiceError.SERVICE_NOT_SUPPORTED)
        return False

    def _initiate_response(self, protection: Protection) -> UserInformation:
        response = InitiateResponse(self._conformance, self._config.max_receive_pdu_size)
        if protection is Protection.PLAIN:
            return response
        before = len(self._outgoing)
        self._reply(response.encode(), Protection.GLO)
        return ServiceSpecificCipheredApdu.decode(self._outgoing.pop(before))

    # --- association handlers ----------------------------------------------------------------------------

    def _reject(
        self,
        diagnostic: AcseServiceUserDiagnostic,
        initiate: InitiateServiceError | None = None,
        context: ApplicationContextName = ApplicationContextName.LOGICAL_NAME,
    ) -> ServerState:
        aare = Aare(
            result=AssociationResult.REJECTED_PERMANENT,
            diagnostic=diagnostic,
            application_context_name=context,
            user_information=initiate,
        )
        self._outgoing.append(aare.encode())
        self._emit(
            AssociationRejected(
                AssociationResult.REJECTED_PERMANENT,
                int(diagnostic),
                initiate_error=None if initiate is None else initiate.value,
                service_error=initiate,
            )
        )
        return ServerState.IDLE

    def _on_aarq(self, aarq: Aarq) -> ServerState:
        policy = self._policy
        self._keys = self._global_keys
        self._conformance = Conformance(0)
        self._client_max_pdu = 0
        self._client_title = None
        self._protection = Protection.PLAIN
        context = (
            ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING
            if policy.ciphered
            else ApplicationContextName.LOGICAL_NAME
        )
        user = AcseServiceUserDiagnostic
        if aarq.application_context_name != context:
            return self._reject(user.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED, context=context)
        mechanism = aarq.mechanism_name or MechanismName.NONE
        if mechanism != policy.mechanism:
            if mechanism is MechanismName.NONE:
                return self._reject(user.AUTHENTICATION_MECHANISM_NAME_REQUIRED, context=context)
            return self._reject(user.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED, context=context)
        if mechanism is MechanismName.LLS and not (
            aarq.calling_authentication_value is not None
            and policy.password is not None
            and lls_password_matches(aarq.calling_authentication_value, policy.password)
        ):
            self._emit(SecurityFailure(SecurityError("wrong LLS password")))
            return self._reject(user.AUTHENTICATION_FAILURE, context=context)
        if policy.uses_system_titles:
            expected = self._config.client_system_title
            # Without ciphering the AARQ may leave the title out when the server knows it already.
            title = aarq.calling_ap_title if aarq.calling_ap_title is not None else expected
            if title is None or len(title) != 8 or (expected is not None and title != expected):
                return self._reject(user.CALLING_AP_TITLE_NOT_RECOGNIZED, context=context)
            self._client_title = title
        if mechanism is MechanismName.HLS_GMAC:
            ctos = aarq.calling_authentication_value
            if ctos is None or not 8 <= len(ctos) <= 64:
                return self._reject(user.AUTHENTICATION_FAILURE, context=context)
            self._client_challenge = ctos
        protection = Protection.PLAIN
        info = aarq.user_information
        if isinstance(info, InitiateRequest):
            if policy.ciphered:
                return self._reject(user.NO_REASON_GIVEN, _initiate_error(InitiateError.OTHER), context)
            request = info
        elif info is None or isinstance(info, InitiateResponse | InitiateServiceError):
            return self._reject(user.NO_REASON_GIVEN, _initiate_error(InitiateError.OTHER), context)
        else:
            try:
                if self._keys is None:
                    raise SecurityError("a ciphered InitiateRequest, but no keys")
                deciphered = unprotect(
                    info.encode(),
                    keys=self._keys,
                    peer_system_title=self._client_title,
                    required_security_control=policy.security_control,
                    last_counter=self._client_counter,
                )
                request = InitiateRequest.decode(deciphered.plain)
            except (SecurityError, DecodeError) as exc:
                self._emit(
                    SecurityFailure(exc if isinstance(exc, SecurityError) else SecurityError(str(exc)))
                )
                refusal = InitiateServiceError(
                    ConfirmedServiceErrorChoice.INITIATE_ERROR,
                    ServiceErrorChoice.APPLICATION_REFERENCE,
                    _APPLICATION_REFERENCE_DECIPHERING_ERROR,
                )
                return self._reject(user.NO_REASON_GIVEN, refusal, context)
            self._client_counter = deciphered.invocation_counter
            protection = Protection.GLO
        if request.proposed_dlms_version_number < DLMS_VERSION:
            return self._reject(
                user.NO_REASON_GIVEN, _initiate_error(InitiateError.DLMS_VERSION_TOO_LOW), context
            )
        if request.client_max_receive_pdu_size and request.client_max_receive_pdu_size < 12:
            return self._reject(
                user.NO_REASON_GIVEN, _initiate_error(InitiateError.PDU_SIZE_TOO_SHORT), context
            )
        conformance = negotiate_conformance(request.proposed_conformance, self._config.supported_conformance)
        if not conformance:
            return self._reject(
                user.NO_REASON_GIVEN, _initiate_error(InitiateError.INCOMPATIBLE_CONFORMANCE), context
            )
        if request.dedicated_key is not None and self._keys is not None:
            self._keys = SecretKeys(
                self._keys.encryption_key, self._keys.authentication_key, request.dedicated_key
            )
        self._conformance = conformance
        self._client_max_pdu = request.client_max_receive_pdu_size or 0xFFFF
        hls = mechanism is MechanismName.HLS_GMAC
        aare = Aare(
            result=AssociationResult.ACCEPTED,
            diagnostic=user.AUTHENTICATION_REQUIRED if hls else user.NULL,
            application_context_name=context,
            responding_ap_title=policy.system_title if policy.uses_system_titles else None,
            responder_acse_requirements=hls,
            mechanism_name=MechanismName.HLS_GMAC if hls else None,
            responding_authentication_value=self._config.server_challenge if hls else None,
            user_information=self._initiate_response(protection),
        )
        self._outgoing.append(aare.encode())
        if hls:
            return ServerState.AWAITING_HLS_REPLY
        self._emit(Associated(self._conformance, self._client_max_pdu, self._client_title))
        return ServerState.READY

    def _on_hls_reply(self, request: ActionRequestNormal) -> ServerState:
        if request.method_descriptor != REPLY_TO_HLS_AUTHENTICATION:
            self._refuse(request)
            return ServerState.AWAITING_HLS_REPLY
        iip = request.invoke_id_and_priority
        policy = self._policy
        try:
            if request.parameters is None:
                raise SecurityError("reply_to_HLS_authentication without f(StoC)")
            data = axdr.decode_data_exact(request.parameters)
            if data.tag != DataTag.OCTET_STRING:
                raise SecurityError("f(StoC) is not an octet-string")
            if (
                self._keys is None
                or self._client_title is None
                or self._config.server_challenge is None
                or self._client_challenge is None
                or policy.system_title is None
            ):
                raise SecurityError("HLS-GMAC needs keys, both system titles and both challenges")
            verify_hls_gmac_response(
                data.value,
                self._config.server_challenge,
                system_title=self._client_title,
                encryption_key=self._keys.encryption_key,
                authentication_key=self._keys.authentication_key,
            )
        except (SecurityError, DecodeError) as exc:
            self._emit(SecurityFailure(exc if isinstance(exc, SecurityError) else SecurityError(str(exc))))
            failed = ActionResponseWithOptionalData(ActionResult.OTHER_REASON)
            self._reply(ActionResponseNormal(iip, failed).encode())
            return ServerState.IDLE
        f_ctos = hls_gmac_response(
            self._client_challenge,
            system_title=policy.system_title,
            invocation_counter=self._consume_counter(),
            encryption_key=self._keys.encryption_key,
            authentication_key=self._keys.authentication_key,
        )
        result = ActionResponseWithOptionalData(
            ActionResult.SUCCESS, axdr.encode_data(Data.octet_string(f_ctos))
        )
        self._reply(ActionResponseNormal(iip, result).encode())
        self._emit(Associated(self._conformance, self._client_max_pdu, self._client_title))
        return ServerState.READY

    def _on_rlrq(self, rlrq: Rlrq) -> ServerState:
        info = rlrq.user_information
        protection = Protection.PLAIN
        if info is not None and not isinstance(
            info, InitiateRequest | InitiateResponse | InitiateServiceError
        ):
            if self._keys is None:
                raise SecurityError("a ciphered RLRQ, but this association has no keys")
            deciphered = unprotect(
                info.encode(),
                keys=self._keys,
                peer_system_title=self._client_title,
                required_security_control=self._policy.security_control,
                last_counter=self._client_counter,
            )
            InitiateRequest.decode(deciphered.plain)
            self._client_counter = deciphered.invocation_counter
            protection = Protection.GLO
        # A plain RLRQ in a ciphered context (gurux's default, and many head-ends') is answered too:
        # releasing only ends the association, which anyone on the link could do by dropping it.
        reply = self._initiate_response(protection) if protection is not Protection.PLAIN else None
        self._outgoing.append(Rlre(ReleaseResponseReason.NORMAL, reply).encode())
        self._emit(Released(ReleaseResponseReason.NORMAL))
        self._conformance = Conformance(0)
        return ServerState.IDLE

    # --- request handlers ---------------------------------------------------------------------------

    def _on_get(self, request: GetRequestNormal) -> ServerState:
        bits = (
            (Conformance.GET, Conformance.SELECTIVE_ACCESS)
            if request.access_selection
            else (Conformance.GET,)
        )
        if not self._granted(*bits):
            return ServerState.READY
        iip = request.invoke_id_and_priority
        self._pending = _Pending(_Service.GET, iip)
        self._emit(GetRequested(iip.invoke_id, request.attribute_descriptor, request.access_selection))
        return ServerState.PENDING

    def _on_get_with_list(self, request: GetRequestWithList) -> ServerState:
        if not self._granted(Conformance.GET, Conformance.MULTIPLE_REFERENCES):
            return ServerState.READY
        iip = request.invoke_id_and_priority
        self._pending = _Pending(_Service.GET_WITH_LIST, iip)
        self._emit(GetWithListRequested(iip.invoke_id, request.attribute_descriptors))
        return ServerState.PENDING

    def _on_get_next(self, request: GetRequestNext) -> ServerState:
        pending = self._pending
        iip = request.invoke_id_and_priority
        if pending is None or iip.invoke_id != pending.invoke_id or request.block_number != pending.sent:
            invalid = GetResponseWithDatablock(
                iip, True, request.block_number, DataAccessResult.DATA_BLOCK_NUMBER_INVALID
            )
            self._reply(invalid.encode())
            return ServerState.READY
        return self._send_get_block(pending)

    def _on_stray_get_next(self, request: GetRequestNext) -> ServerState:
        iip = request.invoke_id_and_priority
        refusal = GetResponseWithDatablock(
            iip, True, request.block_number, DataAccessResult.NO_LONG_GET_IN_PROGRESS
        )
        self._reply(refusal.encode())
        return ServerState.READY

    def _send_get_block(self, pending: _Pending) -> ServerState:
        self._reply(pending.blocks[pending.sent])
        pending.sent += 1
        return ServerState.READY if pending.sent == len(pending.blocks) else ServerState.SENDING_GET_BLOCKS

    def _on_set(self, request: SetRequestNormal) -> ServerState:
        bits = (
            (Conformance.SET, Conformance.SELECTIVE_ACCESS)
            if request.access_selection
            else (Conformance.SET,)
        )
        if not self._granted(*bits):
            return ServerState.READY
        iip = request.invoke_id_and_priority
        self._pending = _Pending(_Service.SET, iip)
        self._emit(
            SetRequested(iip.invoke_id, request.attribute_descriptor, request.value, request.access_selection)
        )
        return ServerState.PENDING

    def _on_set_first_block(self, request: SetRequestWithFirstDatablock) -> ServerState:
        if not self._granted(Conformance.SET, Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE):
            return ServerState.READY
        self._pending = _Pending(_Service.SET, request.invoke_id_and_priority, first=request)
        return self._take_block(self._pending, request.datablock)

    def _on_set_block(self, request: SetRequestWithDatablock) -> ServerState:
        return self._take_block(self._current(request.invoke_id_and_priority), request.datablock)

    def _on_action(self, request: ActionRequestNormal) -> ServerState:
        if not self._granted(Conformance.ACTION):
            return ServerState.READY
        iip = request.invoke_id_and_priority
        self._pending = _Pending(_Service.ACTION, iip)
        self._emit(ActionRequested(iip.invoke_id, request.method_descriptor, request.parameters))
        return ServerState.PENDING

    def _on_action_first_block(self, request: ActionRequestWithFirstPblock) -> ServerState:
        if not self._granted(Conformance.ACTION, Conformance.BLOCK_TRANSFER_WITH_ACTION):
            return ServerState.READY
        self._pending = _Pending(_Service.ACTION, request.invoke_id_and_priority, first=request)
        return self._take_block(self._pending, request.pblock)

    def _on_action_block(self, request: ActionRequestWithPblock) -> ServerState:
        return self._take_block(self._current(request.invoke_id_and_priority), request.pblock)

    def _current(self, iip: InvokeIdAndPriority) -> _Pending:
        pending = self._pending
        if pending is None or pending.invoke_id != iip.invoke_id:
            raise StateError(f"a block for invoke id {iip.invoke_id}, which has no transfer in progress")
        return pending

    def _take_block(self, pending: _Pending, block: DataBlockSA) -> ServerState:
        iip = pending.invoke_id_and_priority
        setting = pending.service is _Service.SET
        expected = len(pending.blocks) + 1
        if block.block_number != expected:
            self._block_refused(pending, DataAccessResult.DATA_BLOCK_NUMBER_INVALID, block.block_number)
            return ServerState.READY
        pending.blocks.append(block.raw_data)
        if not block.last_block:
            ack = (
                SetResponseDatablock(iip, block.block_number)
                if setting
                else ActionResponseNextPblock(iip, block.block_number)
            )
            self._reply(ack.encode())
            return ServerState.RECEIVING_SET_BLOCKS if setting else ServerState.RECEIVING_ACTION_BLOCKS
        value = b"".join(pending.blocks)
        try:
            if axdr.skip_data(value, 0) != len(value):
                raise DecodeError("bytes after the Data")
        except DecodeError:
            self._block_refused(pending, DataAccessResult.TYPE_UNMATCHED, block.block_number)
            return ServerState.READY
        first = pending.first
        if isinstance(first, SetRequestWithFirstDatablock):
            self._emit(SetRequested(iip.invoke_id, first.attribute_descriptor, value, first.access_selection))
        elif isinstance(first, ActionRequestWithFirstPblock):
            self._emit(ActionRequested(iip.invoke_id, first.method_descriptor, value))
        return ServerState.PENDING

    def _block_refused(self, pending: _Pending, result: DataAccessResult, block_number: int) -> None:
        iip = pending.invoke_id_and_priority
        if pending.service is _Service.SET:
            self._reply(SetResponseLastDatablock(iip, result, block_number).encode())
        else:
            failed = ActionResponseWithOptionalData(
                ActionResult(int(result)) if result in _ACTION_CODES else ActionResult.OTHER_REASON
            )
            self._reply(ActionResponseNormal(iip, failed).encode())

    # --- local handlers -------------------------------------------------------------------------------

    def _do_respond(self, answer: _Respond) -> ServerState:
        pending = self._pending
        if pending is None or pending.service is not answer.service or pending.invoke_id != answer.invoke_id:
            raise StateError(
                f"no {answer.service.value} request with invoke id {answer.invoke_id} awaits an answer"
            )
        iip = pending.invoke_id_and_priority
        payload = answer.payload
        if isinstance(payload, ExceptionResponse):
            self._exception(payload.state_error, payload.service_error)
            return ServerState.READY
        if isinstance(payload, ActionResponseWithOptionalData):
            apdu = ActionResponseNormal(iip, payload).encode()
            if not self._fits(apdu):
                raise StateError("the action response exceeds the client's max receive PDU size")
            self._reply(apdu)
            return ServerState.READY
        if isinstance(payload, DataAccessResult) and pending.service is _Service.SET:
            if pending.first is not None:
                self._reply(SetResponseLastDatablock(iip, payload, len(pending.blocks)).encode())
            else:
                self._reply(SetResponseNormal(iip, payload).encode())
            return ServerState.READY
        if isinstance(payload, tuple):
            apdu = GetResponseWithList(iip, payload).encode()
        elif isinstance(payload, bytes | DataAccessResult):
            apdu = GetResponseNormal(iip, payload).encode()
        else:
            raise StateError(f"cannot answer with {type(payload).__name__}")
        if self._fits(apdu):
            self._reply(apdu)
            return ServerState.READY
        if not self._conformance & Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ:
            self._reply(GetResponseNormal(iip, DataAccessResult.OTHER_REASON).encode())
            return ServerState.READY
        # The blocks carry the encoded result (after tag, choice and invoke id) of the normal response:
        # a Data for a single attribute, the SEQUENCE OF Get-Data-Result for a list.
        raw = apdu[4:] if isinstance(payload, bytes) else apdu[3:]
        head = len(GetResponseWithDatablock(iip, False, 1, b"").encode())
        chunks = self._chunks(raw, head)
        pending.blocks = [
            GetResponseWithDatablock(iip, number == len(chunks), number, chunk).encode()
            for number, chunk in enumerate(chunks, start=1)
        ]
        pending.sent = 0
        return self._send_get_block(pending)

    def _do_notify(self, push: _Notify) -> ServerState:
        self._reply(push.notification.encode(), self._policy_protection())
        return self.state

    # --- bad input --------------------------------------------------------------------------------------

    def _on_bad_input(self, message: Undecodable | Unauthentic) -> ServerState:
        if isinstance(message, Unauthentic):
            self._emit(SecurityFailure(message.error, self._pending_invoke_id()))
            error = message.error
            if isinstance(error, ReplayError):
                # Green Book: the authenticated decryption fails when the counter is below the
                # lowest acceptable value; the exception tells the client which value that is.
                self._exception(
                    ExceptionStateError.SERVICE_NOT_ALLOWED,
                    ExceptionServiceError.INVOCATION_COUNTER_ERROR,
                    min(error.lowest_acceptable, MAX_INVOCATION_COUNTER),
                )
            else:
                self._exception(
                    ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.DECIPHERING_ERROR
                )
        else:
            self._emit(RemoteProtocolError(message.error, self._pending_invoke_id()))
            self._exception(ExceptionStateError.SERVICE_UNKNOWN, ExceptionServiceError.OTHER_REASON)
        return self.state

    def _on_oversized(self, message: _Oversized) -> ServerState:
        self._emit(
            RemoteProtocolError(
                DecodeError(
                    f"APDU of {message.size} bytes exceeds max receive PDU size "
                    f"{self._config.max_receive_pdu_size}"
                )
            )
        )
        self._exception(ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.PDU_TOO_LONG)
        return self.state


def _initiate_error(error: InitiateError) -> InitiateServiceError:
    return InitiateServiceError(ConfirmedServiceErrorChoice.INITIATE_ERROR, ServiceErrorChoice.INITIATE, error)


_ACTION_CODES = frozenset(int(code) for code in ActionResult)

_S = ServerState
_V = ServerAssociation
_ALL = tuple(ServerState)
# Where a new request may start: a long GET in progress is abandoned by a new request.
_IDLE_FOR_REQUESTS = (_S.READY, _S.SENDING_GET_BLOCKS)

#: Every transition of the server: (state, input type) -> handler, the states it may lead to, and
#: the state entered when the handler fails on the client's input. A request that no row allows is
#: answered with an ExceptionResponse (service-not-allowed) and a RemoteProtocolError event; a local
#: call that no row allows raises StateError.
_TRANSITIONS: dict[tuple[Enum, type], Transition] = {
    # association and release, in any state (a new AARQ replaces the association)
    **{(state, Aarq): row(_V._on_aarq, _S.IDLE, _S.READY, _S.AWAITING_HLS_REPLY) for state in _ALL},
    **{(state, Rlrq): row(_V._on_rlrq, _S.IDLE) for state in _ALL},
    (_S.AWAITING_HLS_REPLY, ActionRequestNormal): row(
        _V._on_hls_reply, _S.READY, _S.IDLE, _S.AWAITING_HLS_REPLY
    ),
    # requests
    **{(state, GetRequestNormal): row(_V._on_get, _S.PENDING, _S.READY) for state in _IDLE_FOR_REQUESTS},
    **{
        (state, GetRequestWithList): row(_V._on_get_with_list, _S.PENDING, _S.READY)
        for state in _IDLE_FOR_REQUESTS
    },
    **{(state, SetRequestNormal): row(_V._on_set, _S.PENDING, _S.READY) for state in _IDLE_FOR_REQUESTS},
    **{
        (state, SetRequestWithFirstDatablock): row(
            _V._on_set_first_block, _S.PENDING, _S.READY, _S.RECEIVING_SET_BLOCKS
        )
        for state in _IDLE_FOR_REQUESTS
    },
    **{
        (state, ActionRequestNormal): row(_V._on_action, _S.PENDING, _S.READY) for state in _IDLE_FOR_REQUESTS
    },
    **{
        (state, ActionRequestWithFirstPblock): row(
            _V._on_action_first_block, _S.PENDING, _S.READY, _S.RECEIVING_ACTION_BLOCKS
        )
        for state in _IDLE_FOR_REQUESTS
    },
    (_S.READY, GetRequestNext): row(_V._on_stray_get_next, _S.READY),
    (_S.SENDING_GET_BLOCKS, GetRequestNext): row(_V._on_get_next, _S.READY, _S.SENDING_GET_BLOCKS),
    (_S.RECEIVING_SET_BLOCKS, SetRequestWithDatablock): row(
        _V._on_set_block, _S.PENDING, _S.READY, _S.RECEIVING_SET_BLOCKS, on_error=_S.READY
    ),
    (_S.RECEIVING_ACTION_BLOCKS, ActionRequestWithPblock): row(
        _V._on_action_block, _S.PENDING, _S.READY, _S.RECEIVING_ACTION_BLOCKS, on_error=_S.READY
    ),
    # the application's answers and pushes
    (_S.PENDING, _Respond): row(_V._do_respond, _S.READY, _S.SENDING_GET_BLOCKS),
    **{(state, _Notify): row(_V._do_notify, state) for state in _ALL},
    # bad input from the client
    **{(state, kind): row(_V._on_bad_input, state) for state in _ALL for kind in (Undecodable, Unauthentic)},
    **{(state, _Oversized): row(_V._on_oversized, state) for state in _ALL if state is not _S.IDLE},
}
ServerAssociation._TABLE = _TRANSITIONS
