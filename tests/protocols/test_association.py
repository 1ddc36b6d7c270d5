"""Client and server associations back to back, per policy; Green Book exchange; misuse and fuzzing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import axdr
from protocols.acse import Aare, Aarq, AcseServiceUserDiagnostic, MechanismName
from protocols.association import (
    REPLY_TO_HLS_AUTHENTICATION,
    ActionRequested,
    ActionResult,
    Associated,
    AssociationRejected,
    CipheringMode,
    ClientAssociation,
    ClientConfig,
    ClientState,
    Event,
    ExceptionReceived,
    GatewayAddress,
    GetRequested,
    GetResult,
    GetWithListRequested,
    GetWithListResult,
    NotificationReceived,
    Released,
    RemoteProtocolError,
    SecurityFailure,
    SecurityPolicy,
    ServerAssociation,
    ServerConfig,
    ServerState,
    SetRequested,
    SetResult,
)
from protocols.axdr import Data
from protocols.errors import StateError
from protocols.obis import ObisCode
from protocols.security import decode_ciphered_apdu, read_security_header
from protocols.xdlms.action import ActionRequestNormal, ActionResponseNormal
from protocols.xdlms.common import (
    ActionResult as ActionResultCode,
)
from protocols.xdlms.common import (
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataAccessResult,
    InvokeIdAndPriority,
    LongInvokeIdAndPriority,
)
from protocols.xdlms.conformance import Conformance
from protocols.xdlms.errors import (
    ConfirmedServiceError,
    ConfirmedServiceErrorChoice,
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
    ServiceErrorChoice,
)
from protocols.xdlms.gateway import GatewayRequest, GatewayResponse
from protocols.xdlms.gbt import split_into_blocks
from protocols.xdlms.get import GetResponseNormal, GetResponseWithDatablock
from protocols.xdlms.notification import DataNotification
from protocols.xdlms.set import SetResponseDatablock, SetResponseNormal
from tests.vectors.association_vectors import (
    CLIENT_SYSTEM_TITLE,
    CTOS,
    HLS_EXCHANGE,
    SERVER_INVOCATION_COUNTER,
    SERVER_SYSTEM_TITLE,
    STOC,
)

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
OTHER_KEY = bytes.fromhex("0F0E0D0C0B0A09080706050403020100")

CLOCK = CosemAttributeDescriptor(8, ObisCode(0, 0, 1, 0, 0, 255), 2)
PROFILE = CosemAttributeDescriptor(7, ObisCode(1, 0, 99, 1, 0, 255), 2)
SERIAL = CosemAttributeDescriptor(1, ObisCode(0, 0, 96, 1, 0, 255), 2)
METHOD = CosemMethodDescriptor(70, ObisCode(0, 0, 96, 3, 10, 255), 1)

SMALL = axdr.encode_data(Data.double_long_unsigned(123456))
# About 5 kB: an array of 400 octet-strings of 10 bytes.
LARGE = axdr.encode_data(Data.array(Data.octet_string(bytes([i % 256]) * 10) for i in range(400)))
assert len(LARGE) > 4800
ACTION_PARAMETERS = axdr.encode_data(Data.array(Data.long_unsigned(i) for i in range(1200)))

POLICIES = ("none", "lls", "hls-glo", "hls-general")


def policies(kind: str, *, server_key: bytes = AK) -> tuple[SecurityPolicy, SecurityPolicy]:
    if kind == "none":
        return SecurityPolicy(), SecurityPolicy()
    if kind == "lls":
        return (
            SecurityPolicy(MechanismName.LLS, password=b"12345678"),
            SecurityPolicy(MechanismName.LLS, password=b"12345678"),
        )
    ciphering = {
        "hls-glo": CipheringMode.SERVICE_SPECIFIC,
        "hls-general": CipheringMode.GENERAL,
        "hls-plain": CipheringMode.NONE,
    }[kind]
    client = SecurityPolicy(
        MechanismName.HLS_GMAC, ciphering, system_title=CLIENT_SYSTEM_TITLE, encryption_key=EK,
        authentication_key=AK,
    )
    server = SecurityPolicy(
        MechanismName.HLS_GMAC, ciphering, system_title=SERVER_SYSTEM_TITLE, encryption_key=EK,
        authentication_key=server_key,
    )
    return client, server


class App:
    """A tiny meter application: a few attributes, SET stores, ACTION echoes its parameters."""

    def __init__(self) -> None:
        self.values: dict[CosemAttributeDescriptor, bytes] = {SERIAL: SMALL, PROFILE: LARGE}
        self.requests: list[Event] = []

    def serve(self, server: ServerAssociation, events: list[Event]) -> None:
        for event in events:
            self.requests.append(event)
            if isinstance(event, GetRequested):
                server.respond_get(
                    event.invoke_id, self.values.get(event.descriptor, DataAccessResult.OBJECT_UNDEFINED)
                )
            elif isinstance(event, GetWithListRequested):
                server.respond_get_with_list(
                    event.invoke_id,
                    [self.values.get(i.attribute_descriptor, DataAccessResult.OBJECT_UNDEFINED) for i in event.items],
                )
            elif isinstance(event, SetRequested):
                self.values[event.descriptor] = event.value
                server.respond_set(event.invoke_id, DataAccessResult.SUCCESS)
            elif isinstance(event, ActionRequested):
                # small parameters come back; large ones are acknowledged with their size
                parameters = event.parameters or b""
                returned = parameters if len(parameters) < 100 else axdr.encode_data(
                    Data.double_long_unsigned(len(parameters)))
                server.respond_action(event.invoke_id, ActionResultCode.SUCCESS, returned)


class Link:
    """Client and server back to back; records every APDU that crossed, each way."""

    def __init__(
        self,
        kind: str = "none",
        *,
        client_pdu: int = 0xFFFF,
        server_pdu: int = 0xFFFF,
        server_key: bytes = AK,
        password: bytes | None = None,
        supported: Conformance | None = None,
        gateway: GatewayAddress | None = None,
    ) -> None:
        client_policy, server_policy = policies(kind, server_key=server_key)
        if password is not None:
            client_policy = replace(client_policy, password=password)
        self.counters: list[int] = []
        self.client = ClientAssociation(
            ClientConfig(
                client_policy,
                client_challenge=CTOS if client_policy.mechanism is MechanismName.HLS_GMAC else None,
                invocation_counter=10,
                max_receive_pdu_size=client_pdu,
                gateway=gateway,
                counter_used=self.counters.append,
            )
        )
        server_config = ServerConfig(
            server_policy,
            server_challenge=STOC if server_policy.mechanism is MechanismName.HLS_GMAC else None,
            invocation_counter=100,
            max_receive_pdu_size=server_pdu,
        )
        if supported is not None:
            server_config = replace(server_config, supported_conformance=supported)
        self.server = ServerAssociation(server_config)
        self.app = App()
        self.to_server: list[bytes] = []
        self.to_client: list[bytes] = []
        self.gateway = gateway

    def pump(self) -> list[Event]:
        """Exchange APDUs until both sides are quiet; returns the client's events."""
        events: list[Event] = []
        for _ in range(1000):
            outgoing = self.client.data_to_send()
            for apdu in outgoing:
                if self.gateway is not None:
                    request = GatewayRequest.decode(apdu)
                    assert (request.network_id, request.physical_device_address) == (
                        self.gateway.network_id, self.gateway.physical_device_address)
                    apdu = request.apdu
                self.to_server.append(apdu)
                self.app.serve(self.server, self.server.receive_apdu(apdu))
            replies = self.server.data_to_send()
            for apdu in replies:
                self.to_client.append(apdu)
                if self.gateway is not None:
                    apdu = GatewayResponse(
                        self.gateway.network_id, self.gateway.physical_device_address, apdu
                    ).encode()
                events += self.client.receive_apdu(apdu)
            if not outgoing and not replies:
                return events
        raise AssertionError("the exchange did not settle")

    def associate(self) -> list[Event]:
        self.client.associate()
        return self.pump()


def only(events: list[Event], kind: type) -> Any:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


# --- back to back, per policy -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", POLICIES)
def test_session_per_policy(kind: str) -> None:
    link = Link(kind, client_pdu=256, server_pdu=256)
    associated = only(link.associate(), Associated)
    assert link.client.state is ClientState.READY and link.server.state is ServerState.READY
    assert associated.peer_max_receive_pdu_size == 256
    assert associated.conformance & Conformance.GET
    ciphered = kind.startswith("hls")
    assert associated.peer_system_title == (SERVER_SYSTEM_TITLE if ciphered else None)

    # a small GET
    invoke_id = link.client.get(SERIAL)
    assert only(link.pump(), GetResult) == GetResult(invoke_id, SMALL)

    # a 5 kB GET in datablocks of at most 256 bytes
    sent_before = len(link.to_server)
    invoke_id = link.client.get(PROFILE)
    assert only(link.pump(), GetResult) == GetResult(invoke_id, LARGE)
    next_requests = len(link.to_server) - sent_before - 1
    assert next_requests >= 5000 // 256
    assert all(len(apdu) <= 256 for apdu in link.to_client)

    # a 5 kB SET and ACTION in blocks of at most 256 bytes
    before = len(link.to_server)
    invoke_id = link.client.set(CLOCK, LARGE)
    assert only(link.pump(), SetResult) == SetResult(invoke_id, DataAccessResult.SUCCESS)
    assert link.app.values[CLOCK] == LARGE
    assert len(link.to_server) - before >= 5000 // 256
    before = len(link.to_server)
    invoke_id = link.client.action(METHOD, ACTION_PARAMETERS)
    result = only(link.pump(), ActionResult)
    assert result == ActionResult(
        invoke_id, ActionResultCode.SUCCESS, axdr.encode_data(Data.double_long_unsigned(len(ACTION_PARAMETERS)))
    )
    requested = [e for e in link.app.requests if isinstance(e, ActionRequested)]
    assert requested[-1].parameters == ACTION_PARAMETERS
    assert len(link.to_server) - before >= len(ACTION_PARAMETERS) // 256
    assert all(len(apdu) <= 256 for apdu in link.to_server[1:])

    # every request after the AARQ travelled ciphered exactly when the policy asks for it
    first_tags = {apdu[0] for apdu in link.to_server[1:]}
    if kind == "hls-glo":
        assert first_tags <= {0xC8, 0xC9, 0xCB}
    elif kind == "hls-general":
        assert first_tags == {0xDB}
    else:
        assert first_tags <= {0xC0, 0xC1, 0xC3}

    link.client.release()
    assert only(link.pump(), Released)
    assert link.client.state is ClientState.IDLE and link.server.state is ServerState.IDLE


def test_action_returns_small_data_and_get_with_list() -> None:
    link = Link("hls-glo")
    link.associate()
    invoke_id = link.client.action(METHOD, SMALL)
    assert only(link.pump(), ActionResult) == ActionResult(invoke_id, ActionResultCode.SUCCESS, SMALL)
    items = [CosemAttributeDescriptorWithSelection(SERIAL), CosemAttributeDescriptorWithSelection(CLOCK)]
    invoke_id = link.client.get_with_list(items)
    assert only(link.pump(), GetWithListResult) == GetWithListResult(
        invoke_id, (SMALL, DataAccessResult.OBJECT_UNDEFINED)
    )


class ListRefusingApp(App):
    """A meter that serves no GET-with-list: it refuses each with an ExceptionResponse."""

    def serve(self, server: ServerAssociation, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, GetWithListRequested):
                self.requests.append(event)
                server.respond_exception(event.invoke_id, ExceptionStateError.SERVICE_NOT_ALLOWED,
                                         ExceptionServiceError.PDU_TOO_LONG)
            else:
                super().serve(server, [event])


@pytest.mark.parametrize("kind", ["none", "hls-glo"])
def test_server_refuses_a_get_with_list_with_an_exception_and_serves_the_next_request(kind: str) -> None:
    link = Link(kind)
    link.app = ListRefusingApp()
    link.associate()
    link.client.get_with_list([CosemAttributeDescriptorWithSelection(SERIAL),
                               CosemAttributeDescriptorWithSelection(CLOCK)])
    events = link.pump()
    # Sent plain, as every ExceptionResponse of this server: the client may not decipher otherwise.
    assert link.to_client[-1] == ExceptionResponse(ExceptionStateError.SERVICE_NOT_ALLOWED,
                                                   ExceptionServiceError.PDU_TOO_LONG).encode()
    assert only(events, ExceptionReceived).exception.service_error is ExceptionServiceError.PDU_TOO_LONG
    invoke_id = link.client.get(SERIAL)
    assert only(link.pump(), GetResult) == GetResult(invoke_id, SMALL)
    with pytest.raises(StateError):  # nothing pending: there is nothing to refuse
        link.server.respond_exception(invoke_id, ExceptionStateError.SERVICE_NOT_ALLOWED,
                                      ExceptionServiceError.OTHER_REASON)


def test_get_with_list_in_datablocks() -> None:
    link = Link("none", client_pdu=256)
    link.associate()
    items = [CosemAttributeDescriptorWithSelection(PROFILE), CosemAttributeDescriptorWithSelection(SERIAL)]
    invoke_id = link.client.get_with_list(items)
    assert only(link.pump(), GetWithListResult) == GetWithListResult(invoke_id, (LARGE, SMALL))


def test_invocation_counters_reported_before_sending_and_used_once() -> None:
    link = Link("hls-glo")
    link.associate()
    link.client.get(SERIAL)
    link.pump()
    link.client.release()
    link.pump()
    # AARQ, f(StoC), the HLS action, the GET, the RLRQ: each its own counter, in order
    assert link.counters == list(range(10, 15))
    assert link.client.next_invocation_counter == 15
    used = []
    for apdu in link.to_server:
        if apdu[0] in (0xC8, 0xCB):
            used.append(decode_ciphered_apdu(apdu).header.invocation_counter)
    assert used == [12, 13]
    # the server's counters strictly increase and the client recorded the last one
    server_counters = [decode_ciphered_apdu(a).header.invocation_counter for a in link.to_client if a[0] >= 0xC8]
    assert server_counters == sorted(set(server_counters))
    assert server_counters == [102, 103]
    # the server: AARE 100, f(CtoS) 101, ACTION response 102, GET response 103, RLRE 104
    assert link.client.server_invocation_counter == 104
    assert link.server.next_invocation_counter == 105
    assert link.server.client_invocation_counter == 14


def test_gateway_wraps_every_request() -> None:
    gateway = GatewayAddress(1, bytes.fromhex("0102030405060708"))
    link = Link("hls-general", gateway=gateway)
    assert only(link.associate(), Associated)
    invoke_id = link.client.get(SERIAL)
    assert only(link.pump(), GetResult) == GetResult(invoke_id, SMALL)
    # a gateway-response from another meter is refused
    other = GatewayResponse(1, b"\x09" * 8, link.to_client[-1]).encode()
    assert isinstance(only(link.client.receive_apdu(other), RemoteProtocolError), RemoteProtocolError)


def test_notification_ciphered_reaches_client() -> None:
    link = Link("hls-glo")
    link.associate()
    push = DataNotification(LongInvokeIdAndPriority(7), None, SMALL)
    link.server.send_notification(push)
    assert only(link.pump(), NotificationReceived) == NotificationReceived(push)
    assert link.to_client[-1][0] == 0xDB  # data-notification has no glo- form


def test_general_block_transfer_reassembled_with_acks() -> None:
    link = Link("none")
    link.associate()
    invoke_id = link.client.get(PROFILE)
    link.client.data_to_send()
    response = GetResponseNormal(InvokeIdAndPriority(invoke_id), LARGE).encode()
    blocks = split_into_blocks(response, 200)
    events: list[Event] = []
    acks = 0
    for block in blocks:
        events += link.client.receive_apdu(block.encode())
        acks += len(link.client.data_to_send())
    assert only(events, GetResult) == GetResult(invoke_id, LARGE)
    assert acks == len(blocks) - 1


# --- refusals ----------------------------------------------------------------------------------------


def test_wrong_lls_password_is_rejected() -> None:
    link = Link("lls", password=b"87654321")
    events = link.associate()
    rejected = only(events, AssociationRejected)
    assert rejected.diagnostic == AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE
    assert link.client.state is ClientState.IDLE
    assert any(isinstance(e, SecurityFailure) for e in link.app.requests)


def test_wrong_hls_key_plain_context_server_refuses_f_stoc() -> None:
    link = Link("hls-plain", server_key=OTHER_KEY)
    events = link.associate()
    assert isinstance(only(events, SecurityFailure).error, Exception)
    assert link.client.state is ClientState.IDLE and link.server.state is ServerState.IDLE


def test_wrong_hls_key_ciphered_context_aarq_refused() -> None:
    link = Link("hls-glo", server_key=OTHER_KEY)
    rejected = only(link.associate(), AssociationRejected)
    assert rejected.initiate_error == 6  # application-reference deciphering-error
    assert rejected.service_error is not None
    assert rejected.service_error.error is ServiceErrorChoice.APPLICATION_REFERENCE
    assert link.client.state is ClientState.IDLE


def test_client_detects_bad_f_ctos() -> None:
    link = Link("hls-plain")
    link.client.associate()
    link.server.receive_apdu(link.client.data_to_send()[0])
    link.client.receive_apdu(link.server.data_to_send()[0])
    link.server.receive_apdu(link.client.data_to_send()[0])
    reply = bytearray(link.server.data_to_send()[0])
    reply[-1] ^= 0x01
    events = link.client.receive_apdu(bytes(reply))
    assert "does not match" in str(only(events, SecurityFailure).error)
    assert link.client.state is ClientState.IDLE
    with pytest.raises(StateError):
        link.client.get(SERIAL)


@pytest.mark.parametrize("kind", ["hls-glo", "hls-general"])
def test_replayed_request_is_refused(kind: str) -> None:
    link = Link(kind)
    link.associate()
    link.client.get(SERIAL)
    request = link.client.data_to_send()[0]
    link.app.serve(link.server, link.server.receive_apdu(request))
    link.client.receive_apdu(link.server.data_to_send()[0])
    events = link.server.receive_apdu(request)
    assert "replayed" in str(only(events, SecurityFailure).error)
    refusal = ExceptionResponse.decode(link.server.data_to_send()[0])
    assert refusal.service_error is ExceptionServiceError.INVOCATION_COUNTER_ERROR
    assert refusal.invocation_counter == decode_ciphered_apdu(request).header.invocation_counter + 1
    assert not any(isinstance(e, GetRequested) for e in events)


def test_replayed_response_is_refused_by_client() -> None:
    link = Link("hls-glo")
    link.associate()
    link.client.get(SERIAL)
    link.pump()
    old_response = link.to_client[-1]
    invoke_id = link.client.get(SERIAL)
    link.client.data_to_send()
    events = link.client.receive_apdu(old_response)
    assert only(events, SecurityFailure).invoke_id == invoke_id
    assert link.client.state is ClientState.READY


def test_plain_request_refused_in_ciphered_context() -> None:
    link = Link("hls-glo")
    link.associate()
    from protocols.xdlms.get import GetRequestNormal

    events = link.server.receive_apdu(GetRequestNormal(InvokeIdAndPriority(1), SERIAL).encode())
    assert only(events, SecurityFailure)
    assert ExceptionResponse.decode(link.server.data_to_send()[0]).service_error is (
        ExceptionServiceError.DECIPHERING_ERROR
    )


def test_service_not_granted_refused_locally() -> None:
    link = Link("none", supported=Conformance.GET | Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ)
    associated = only(link.associate(), Associated)
    assert not associated.conformance & Conformance.SET
    with pytest.raises(StateError, match="SET"):
        link.client.set(CLOCK, SMALL)
    with pytest.raises(StateError, match="ACTION"):
        link.client.action(METHOD)
    with pytest.raises(StateError, match="MULTIPLE_REFERENCES"):
        link.client.get_with_list([CosemAttributeDescriptorWithSelection(SERIAL)])
    assert link.client.data_to_send() == []
    assert link.client.state is ClientState.READY


def test_large_set_without_block_transfer_refused_locally() -> None:
    link = Link("none", server_pdu=256, supported=Conformance.GET | Conformance.SET)
    link.associate()
    with pytest.raises(StateError, match="BLOCK_TRANSFER_WITH_SET"):
        link.client.set(CLOCK, LARGE)


def test_local_misuse_raises_state_error() -> None:
    link = Link("none")
    with pytest.raises(StateError):
        link.client.get(SERIAL)
    with pytest.raises(StateError):
        link.client.release()
    with pytest.raises(StateError):
        link.server.respond_get(1, SMALL)
    link.associate()
    with pytest.raises(StateError):
        link.client.associate()
    link.client.get(SERIAL)
    with pytest.raises(StateError):
        link.client.get(SERIAL)
    link.client.cancel_request()
    assert link.client.state is ClientState.READY


def test_server_refuses_oversized_request() -> None:
    link = Link("none", server_pdu=64)
    link.associate()
    events = link.server.receive_apdu(b"\xc0\x01\xc1" + b"\x00" * 100)
    assert only(events, RemoteProtocolError)
    refusal = ExceptionResponse.decode(link.server.data_to_send()[0])
    assert refusal.service_error is ExceptionServiceError.PDU_TOO_LONG


# --- the Green Book exchange and gurux ------------------------------------------------------------


def _gb_client() -> ClientAssociation:
    policy = SecurityPolicy(
        MechanismName.HLS_GMAC, system_title=CLIENT_SYSTEM_TITLE, encryption_key=EK, authentication_key=AK
    )
    return ClientAssociation(
        ClientConfig(
            policy,
            client_challenge=CTOS,
            invocation_counter=1,
            server_system_title=SERVER_SYSTEM_TITLE,
            proposed_conformance=Conformance(0x007E1F),
            max_receive_pdu_size=1200,
        )
    )


def _gb_server() -> ServerAssociation:
    policy = SecurityPolicy(
        MechanismName.HLS_GMAC, system_title=SERVER_SYSTEM_TITLE, encryption_key=EK, authentication_key=AK
    )
    return ServerAssociation(
        ServerConfig(
            policy,
            server_challenge=STOC,
            invocation_counter=SERVER_INVOCATION_COUNTER,
            client_system_title=CLIENT_SYSTEM_TITLE,
            supported_conformance=Conformance(0x00501F),
            max_receive_pdu_size=500,
        )
    )


def test_green_book_hls_exchange_client_side() -> None:
    (_, _, aarq, _), (_, _, aare, _), (_, _, action, _), (_, _, response, _) = HLS_EXCHANGE
    client = _gb_client()
    client.associate()
    sent = Aarq.decode(client.data_to_send()[0])
    # ours names the calling AP title as well; everything else is the Green Book's AARQ
    assert replace(sent, calling_ap_title=None) == Aarq.decode(bytes.fromhex(aarq))
    assert sent.calling_ap_title == CLIENT_SYSTEM_TITLE
    assert client.receive_apdu(bytes.fromhex(aare)) == []
    assert client.data_to_send() == [bytes.fromhex(action)]
    events = client.receive_apdu(bytes.fromhex(response))
    assert events == [Associated(Conformance(0x00501F), 500, SERVER_SYSTEM_TITLE)]


def test_green_book_hls_exchange_server_side() -> None:
    (_, _, aarq, _), (_, _, _, _), (_, _, action, _), (_, _, response, (_, f_ctos)) = HLS_EXCHANGE
    server = _gb_server()
    assert server.receive_apdu(bytes.fromhex(aarq)) == []
    aare = Aare.decode(server.data_to_send()[0])
    assert aare.responding_authentication_value == STOC
    assert aare.diagnostic == AcseServiceUserDiagnostic.AUTHENTICATION_REQUIRED
    assert aare.responding_ap_title == SERVER_SYSTEM_TITLE
    events = server.receive_apdu(bytes.fromhex(action))
    assert events == [Associated(Conformance(0x00501F), 1200, CLIENT_SYSTEM_TITLE)]
    assert server.data_to_send() == [bytes.fromhex(response)]
    answer = ActionResponseNormal.decode(bytes.fromhex(response)).response.value()
    assert answer is not None and answer.value == bytes.fromhex(f_ctos)


def test_green_book_action_vectors_both_ways() -> None:
    for name, _, hex_apdu, (who, f_value) in HLS_EXCHANGE[2:]:
        raw = bytes.fromhex(hex_apdu)
        if who == "client":
            request = ActionRequestNormal.decode(raw)
            assert request.method_descriptor == REPLY_TO_HLS_AUTHENTICATION, name
            assert request.encode() == raw
            value = request.parameters_value()
        else:
            response = ActionResponseNormal.decode(raw)
            assert response.encode() == raw
            value = response.response.value()
        assert value is not None and value.value == bytes.fromhex(f_value)


def test_client_aarq_matches_gurux_byte_for_byte() -> None:
    gurux = pytest.importorskip("tests.peers.gurux_peer")
    from tests.peers import SUITE0

    policy = SecurityPolicy(
        MechanismName.HLS_GMAC,
        CipheringMode.SERVICE_SPECIFIC,
        system_title=SUITE0.system_title,
        encryption_key=SUITE0.encryption_key,
        authentication_key=SUITE0.authentication_key,
    )
    client = ClientAssociation(
        ClientConfig(policy, client_challenge=CTOS, invocation_counter=5,
                     proposed_conformance=Conformance(0x401E5D), max_receive_pdu_size=0xFFFF)
    )
    client.associate()
    ours = client.data_to_send()[0]
    theirs = gurux.aarq(mechanism=5, keys=SUITE0, invocation_counter=5, challenge=CTOS)
    assert ours == theirs
    decoded = gurux.decode_apdu(ours, SUITE0)
    assert decoded["mechanism"] == 5 and decoded["calling_ap_title"] == SUITE0.system_title
    assert decoded["calling_authentication_value"] == CTOS


def test_server_serves_gurux_ciphered_get() -> None:
    gurux = pytest.importorskip("tests.peers.gurux_peer")
    from tests.peers import SUITE0

    server_policy = SecurityPolicy(
        MechanismName.HLS_GMAC, CipheringMode.SERVICE_SPECIFIC, system_title=SERVER_SYSTEM_TITLE,
        encryption_key=EK, authentication_key=AK,
    )
    server = ServerAssociation(ServerConfig(server_policy, server_challenge=STOC))
    server.receive_apdu(gurux.aarq(mechanism=5, keys=SUITE0, invocation_counter=5, challenge=CTOS))
    aare = Aare.decode(server.data_to_send()[0])
    assert aare.result == 0
    # finish HLS with our client's f(StoC) computed for gurux's system title
    from protocols.security import hls_gmac_response

    f_stoc = hls_gmac_response(STOC, system_title=SUITE0.system_title, invocation_counter=6,
                               encryption_key=EK, authentication_key=AK)
    # a ciphered ACTION built as our client would send it
    from protocols.association._protection import Protection, SecretKeys, protect

    action = ActionRequestNormal(
        InvokeIdAndPriority(1), REPLY_TO_HLS_AUTHENTICATION, axdr.encode_data(Data.octet_string(f_stoc))
    ).encode()
    ciphered = protect(action, Protection.GLO, keys=SecretKeys(EK, AK), system_title=SUITE0.system_title,
                       invocation_counter=7, security_control=0x30)
    assert isinstance(only(server.receive_apdu(ciphered), Associated), Associated)
    server.data_to_send()
    events = server.receive_apdu(gurux.glo_get_request(8, bytes(CLOCK.instance_id), 2, SUITE0, 8))
    assert only(events, GetRequested).descriptor == CLOCK


# --- every (state, APDU type) pair ------------------------------------------------------------------

_IIP = InvokeIdAndPriority(1)
_PEER_APDUS: dict[str, bytes] = {
    "aarq": Aarq().encode(),
    "aare": bytes.fromhex(HLS_EXCHANGE[1][2]),
    "rlrq": bytes.fromhex("6203800100"),
    "rlre": bytes.fromhex("6303800100"),
    "get-request": bytes.fromhex("C001C100080000010000FF0200"),
    "get-request-next": bytes.fromhex("C002C100000001"),
    "get-response": GetResponseNormal(_IIP, SMALL).encode(),
    "get-response-block": GetResponseWithDatablock(_IIP, False, 1, b"\x01\x02").encode(),
    "set-request": bytes.fromhex("C101C100080000010000FF02000906") + b"\x00" * 6,
    "set-response": SetResponseNormal(_IIP, DataAccessResult.SUCCESS).encode(),
    "set-response-block": SetResponseDatablock(_IIP, 1).encode(),
    "action-request": HLS_EXCHANGE[2][2],
    "action-response": bytes.fromhex(HLS_EXCHANGE[3][2]),
    "exception": ExceptionResponse(ExceptionStateError.SERVICE_NOT_ALLOWED,
                                   ExceptionServiceError.OPERATION_NOT_POSSIBLE).encode(),
    "confirmed-service-error": ConfirmedServiceError(
        ConfirmedServiceErrorChoice.READ, ServiceErrorChoice.ACCESS, 1).encode(),
    "gbt": split_into_blocks(b"\xc4\x01\xc1\x00\x11\x05", 3)[0].encode(),
    "data-notification": DataNotification(LongInvokeIdAndPriority(1), None, SMALL).encode(),
    "glo-get-request": bytes.fromhex("C81E3001234567411312FF935A47566827C467BC7D825C3BE4A77C3FCC056B6B"),
    "garbage": b"\xff\x00\x01",
    "empty": b"",
}
_PEER_APDUS = {k: bytes.fromhex(v) if isinstance(v, str) else v for k, v in _PEER_APDUS.items()}


def _client_in(state: ClientState, kind: str) -> Link:
    link = Link(kind)
    if state is ClientState.IDLE:
        return link
    link.client.associate()
    if state is ClientState.AWAITING_AARE:
        return link
    if state is ClientState.AWAITING_HLS_REPLY:
        link.server.receive_apdu(link.client.data_to_send()[0])
        link.client.receive_apdu(link.server.data_to_send()[0])
        assert link.client.state is state
        return link
    link.pump()
    if state is ClientState.AWAITING_RESPONSE:
        link.client.get(SERIAL)
    elif state is ClientState.AWAITING_RLRE:
        link.client.release()
    assert link.client.state is state
    return link


# The HLS-reply states exist only with HLS, so "none" is not paired with them.
_CLIENT_CASES = [
    (kind, state)
    for kind in ("none", "hls-plain", "hls-glo")
    for state in ClientState
    if not (state is ClientState.AWAITING_HLS_REPLY and kind == "none")
]
_SERVER_CASES = [
    (kind, state)
    for kind in ("none", "hls-plain")
    for state in ServerState
    if not (state is ServerState.AWAITING_HLS_REPLY and kind == "none")
]


@pytest.mark.parametrize(("kind", "state"), _CLIENT_CASES)
@pytest.mark.parametrize("apdu", list(_PEER_APDUS))
def test_client_every_state_and_apdu(kind: str, state: ClientState, apdu: str) -> None:
    link = _client_in(state, kind)
    events = link.client.receive_apdu(_PEER_APDUS[apdu])
    assert isinstance(events, list)
    assert all(isinstance(e, Event.__args__) for e in events)  # type: ignore[attr-defined]
    outgoing = link.client.data_to_send()
    assert all(isinstance(a, bytes) for a in outgoing)
    # either an event, or (a datablock, a GBT block) the next request or acknowledgement
    assert events or outgoing, f"{apdu} in {state} produced nothing"
    assert link.client.state in ClientState


def _server_in(state: ServerState, kind: str) -> Link:
    link = Link(kind, client_pdu=256, server_pdu=256)
    if state is ServerState.IDLE:
        return link
    link.client.associate()
    link.server.receive_apdu(link.client.data_to_send()[0])
    if state is ServerState.AWAITING_HLS_REPLY:
        return link
    link.client.receive_apdu(link.server.data_to_send()[0])
    link.pump()
    if state is ServerState.PENDING:
        link.client.get(SERIAL)
        link.server.receive_apdu(link.client.data_to_send()[0])
    elif state is ServerState.SENDING_GET_BLOCKS:
        link.client.get(PROFILE)
        link.app.serve(link.server, link.server.receive_apdu(link.client.data_to_send()[0]))
    elif state is ServerState.RECEIVING_SET_BLOCKS:
        link.client.set(CLOCK, LARGE)
        link.server.receive_apdu(link.client.data_to_send()[0])
    elif state is ServerState.RECEIVING_ACTION_BLOCKS:
        link.client.action(METHOD, ACTION_PARAMETERS)
        link.server.receive_apdu(link.client.data_to_send()[0])
    assert link.server.state is state, link.server.state
    return link


@pytest.mark.parametrize(("kind", "state"), _SERVER_CASES)
@pytest.mark.parametrize("apdu", list(_PEER_APDUS))
def test_server_every_state_and_apdu(kind: str, state: ServerState, apdu: str) -> None:
    link = _server_in(state, kind)
    events = link.server.receive_apdu(_PEER_APDUS[apdu])
    assert all(isinstance(e, Event.__args__) for e in events)  # type: ignore[attr-defined]
    replies = link.server.data_to_send()
    assert events or replies, f"{apdu} in {state} was silently dropped"
    assert link.server.state in ServerState


# --- fuzzing ----------------------------------------------------------------------------------------

_EVENT_TYPES = Event.__args__  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["none", "hls-glo", "hls-general"])
@given(data=st.binary(max_size=300))
def test_random_bytes_give_events_only(kind: str, data: bytes) -> None:
    link = Link(kind)
    link.associate()
    for side in (link.client, link.server):
        events = side.receive_apdu(data)
        assert all(isinstance(e, _EVENT_TYPES) for e in events)
        side.data_to_send()


_VALID = [v for k, v in _PEER_APDUS.items() if k not in ("garbage", "empty")]


@pytest.mark.parametrize("kind", ["none", "hls-glo"])
@given(
    index=st.integers(0, len(_VALID) - 1),
    position=st.integers(0, 400),
    value=st.integers(0, 255),
    cut=st.integers(0, 400),
)
def test_mutated_apdus_give_events_only(kind: str, index: int, position: int, value: int, cut: int) -> None:
    link = Link(kind)
    link.associate()
    original = bytearray(_VALID[index])
    if original:
        original[position % len(original)] = value
    for data in (bytes(original), bytes(original[: cut % (len(original) + 1)]), bytes(original) + b"\x00"):
        for side in (link.client, link.server):
            events = side.receive_apdu(data)
            assert all(isinstance(e, _EVENT_TYPES) for e in events)
            side.data_to_send()


def test_ciphered_response_mutations_never_escape() -> None:
    link = Link("hls-glo")
    link.associate()
    link.client.get(SERIAL)
    link.pump()
    response = link.to_client[-1]
    for position in range(len(response)):
        for flip in (0x01, 0x80):
            link.client.get(SERIAL)
            link.client.data_to_send()
            mutated = bytearray(response)
            mutated[position] ^= flip
            events = link.client.receive_apdu(bytes(mutated))
            assert events and all(isinstance(e, SecurityFailure | RemoteProtocolError) for e in events)
            assert link.client.state is ClientState.READY
    assert read_security_header(decode_ciphered_apdu(response).content).invocation_counter > 100


def test_unsolicited_exception_in_ready() -> None:
    link = Link("none")
    link.associate()
    events = link.client.receive_apdu(_PEER_APDUS["exception"])
    assert only(events, ExceptionReceived).invoke_id is None


def test_a_plain_rlrq_in_a_ciphered_context_is_answered() -> None:
    """gurux (and many head-ends) release with a plain RLRQ; a meter answers RLRE rather than stay silent."""
    from protocols.acse import Rlre, Rlrq

    link = Link("hls-glo")
    assert any(isinstance(e, Associated) for e in link.associate())
    events = link.server.receive_apdu(Rlrq().encode())
    assert any(isinstance(e, Released) for e in events)
    answer = link.server.data_to_send()
    assert len(answer) == 1 and isinstance(Rlre.decode(answer[0]), Rlre)
    assert link.server.state is ServerState.IDLE
