"""Adapter over gurux-dlms 1.0.203 (test-only peer): build client/server APDUs, decode them to plain values.

Client APDUs come from GXDLMSSecureClient (InterfaceType.PDU, or HDLC/WRAPPER for framing), the way a
gurux user drives a meter. gurux has no server-side encoder usable without a full object model, so
server APDUs are built with its GXDLMSTranslator (XML -> PDU). Decoding goes through the translator's
simple XML (pduToXml), which covers every APDU gurux knows, and is normalised to the shape documented
in tests.peers; GET responses can also be decoded the user's way with GXDLMSClient.getData.
"""

from __future__ import annotations

import contextlib
import io
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSServer, GXDLMSTranslator, GXReplyData, GXServerReply
from gurux_dlms.ConnectionState import ConnectionState
from gurux_dlms.enums import (
    Authentication,
    Command,
    InterfaceType,
    ObjectType,
    RequestTypes,
    Security,
    TranslatorOutputType,
)
from gurux_dlms.GXDLMSTranslator import TranslatorSimpleTags
from gurux_dlms.GXHdlcSettings import GXHdlcSettings
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.internal._GXDataInfo import _GXDataInfo
from gurux_dlms.objects import (
    GXDLMSAssociationLogicalName,
    GXDLMSHdlcSetup,
    GXDLMSObject,
    GXDLMSProfileGeneric,
)
from gurux_dlms.secure import GXDLMSSecureClient

from tests.peers import SecurityKeys, TypedValue

__all__ = [
    "aare",
    "aarq",
    "action_request_normal",
    "action_request_blocks",
    "action_response_normal",
    "aarq_with_conformance",
    "data_notification",
    "data_xml",
    "decode_apdu",
    "decode_data",
    "decode_get_response",
    "decode_get_response_list",
    "gateway_get_request",
    "get_request_by_entry",
    "get_request_with_list",
    "parse_aare",
    "retranslate",
    "set_request_blocks",
    "translate",
    "exception_response",
    "get_request_next",
    "get_request_normal",
    "get_response_normal",
    "get_response_normal_error",
    "get_response_with_block",
    "glo_get_request",
    "hdlc_aarq",
    "hdlc_disc",
    "hdlc_snrm",
    "hdlc_server_answer",
    "make_client",
    "rlrq",
    "set_request_normal",
    "set_response_normal",
    "wrapper_aarq",
    "xml_to_pdu",
]

_MECHANISMS = {0: Authentication.NONE, 1: Authentication.LOW, 5: Authentication.HIGH_GMAC}
_MECHANISM_NAMES = {
    "None": 0,
    "Low": 1,
    "High": 2,
    "HighMd5": 3,
    "HighSha1": 4,
    "HighGmac": 5,
    "HighSha256": 6,
    "HighEcdsa": 7,
}
_RELEASE_REASONS = {"Normal": 0, "Urgent": 1, "UserDefined": 30}


def make_client(
    *,
    mechanism: int = 0,
    password: bytes | None = None,
    keys: SecurityKeys | None = None,
    invocation_counter: int = 0,
    challenge: bytes | None = None,
    interface: int = InterfaceType.PDU,
    client_address: int = 16,
    server_address: int = 1,
    server_system_title: bytes | None = None,
) -> Any:
    """A configured GXDLMSSecureClient. With `keys`, APDUs are glo-ciphered (SC 0x30) from
    `invocation_counter` on; `server_system_title` is what gurux would have learnt from the AARE."""
    client = GXDLMSSecureClient(
        True, client_address, server_address, _MECHANISMS[mechanism], password, interface
    )
    if keys is not None:
        client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
        client.ciphering.systemTitle = keys.system_title
        client.ciphering.blockCipherKey = keys.encryption_key
        client.ciphering.authenticationKey = keys.authentication_key
        client.ciphering.invocationCounter = invocation_counter
    if challenge is not None:
        client.setCtoSChallenge(challenge)
    if server_system_title is not None:
        client.settings.sourceSystemTitle = server_system_title
    return client


def _one(messages: Any) -> bytes:
    if isinstance(messages, (bytes, bytearray)):
        return bytes(messages)
    if len(messages) != 1:
        raise ValueError(f"gurux produced {len(messages)} messages, expected one")
    return bytes(messages[0])


def _ln(obis: bytes) -> str:
    return ".".join(str(b) for b in obis)


def _object(class_id: int, obis: bytes) -> Any:
    obj = GXDLMSObject(ObjectType(class_id), _ln(obis))
    return obj


# ---------------------------------------------------------------------------------------------------
# Client-side encoders


def aarq(
    *,
    mechanism: int = 0,
    password: bytes | None = None,
    keys: SecurityKeys | None = None,
    invocation_counter: int = 0,
    challenge: bytes | None = None,
) -> bytes:
    """AARQ as gurux sends it: mechanism 0, 1 (LLS `password`) or 5 (HLS-GMAC with `keys`, the
    glo-initiateRequest ciphered with `invocation_counter`, CtoS `challenge`)."""
    if mechanism == 5 and (keys is None or challenge is None):
        raise ValueError("HLS-GMAC needs keys and a challenge")
    client = make_client(
        mechanism=mechanism,
        password=password,
        keys=keys if mechanism == 5 else None,
        invocation_counter=invocation_counter,
        challenge=challenge,
    )
    return _one(client.aarqRequest())


def get_request_normal(
    class_id: int,
    obis: bytes,
    attribute: int,
    *,
    invoke_id: int = 1,
    range_from: datetime | None = None,
    range_to: datetime | None = None,
) -> bytes:
    """GET-Request-Normal from GXDLMSClient.read; with a range, readRowsByRange on a profile generic
    (gurux always restricts on the clock 0.0.1.0.0.255 attribute 2 when no capture objects are known)."""
    client = make_client()
    client.settings.invokeID = invoke_id
    if range_from is not None or range_to is not None:
        if range_from is None or range_to is None or class_id != 7:
            raise ValueError("range access is for class 7 with both bounds")
        pg = GXDLMSProfileGeneric(_ln(obis))
        return _one(client.readRowsByRange(pg, GXDateTime(range_from), GXDateTime(range_to)))
    return _one(client.read(_object(class_id, obis), attribute))


def get_request_next(block_number: int, *, invoke_id: int = 1) -> bytes:
    client = make_client()
    client.settings.invokeID = invoke_id
    client.settings.command = Command.GET_REQUEST
    client.settings.setBlockIndex(block_number)
    return _one(client.receiverReady(RequestTypes.DATABLOCK))


def set_request_normal(
    class_id: int, obis: bytes, attribute: int, value: TypedValue, *, invoke_id: int = 1
) -> bytes:
    """gurux's write() needs a typed object model; the request is built with its translator instead."""
    xml = (
        f'<SetRequest><SetRequestNormal><InvokeIdAndPriority Value="{0xC0 | invoke_id:02X}" />'
        f"{_descriptor('AttributeDescriptor', class_id, obis, 'AttributeId', attribute)}"
        f"<Value>{data_xml(value)}</Value></SetRequestNormal></SetRequest>"
    )
    return xml_to_pdu(xml)


def action_request_normal(
    class_id: int, obis: bytes, method: int, parameter: TypedValue | None = None, *, invoke_id: int = 1
) -> bytes:
    params = (
        f"<MethodInvocationParameters>{data_xml(parameter)}</MethodInvocationParameters>" if parameter else ""
    )
    xml = (
        f'<ActionRequest><ActionRequestNormal><InvokeIdAndPriority Value="{0xC0 | invoke_id:02X}" />'
        f"{_descriptor('MethodDescriptor', class_id, obis, 'MethodId', method)}{params}"
        f"</ActionRequestNormal></ActionRequest>"
    )
    return xml_to_pdu(xml)


def rlrq() -> bytes:
    """RLRQ from GXDLMSClient.releaseRequest (reason normal)."""
    client = make_client()
    # releaseRequest returns None unless gurux believes an association is open
    client.settings.connected |= ConnectionState.DLMS
    return _one(client.releaseRequest())


def glo_get_request(
    class_id: int, obis: bytes, attribute: int, keys: SecurityKeys, invocation_counter: int
) -> bytes:
    """glo-get-request (0xC8), SC 0x30, as a gurux client with global keys sends a read."""
    client = make_client(keys=keys, invocation_counter=invocation_counter)
    return _one(client.read(_object(class_id, obis), attribute))


def hdlc_snrm(client_address: int = 16, server_address: int = 1) -> bytes:
    """SNRM as gurux sends it with default HDLC settings (no parameter-negotiation field)."""
    return bytes(
        make_client(
            interface=InterfaceType.HDLC, client_address=client_address, server_address=server_address
        ).snrmRequest()
    )


class _Reply(GXServerReply):  # type: ignore[misc]
    # GXDLMSServer.handleRequest calls sr.setReply, which 1.0.203's GXServerReply does not have.
    def setReply(self, value: Any) -> None:
        self.reply = value


class _HdlcSetup(GXDLMSHdlcSetup):  # type: ignore[misc]
    # handleSnrmRequest reads the server's HDLC setup object under GXHdlcSettings's names too
    # (self.hdlc.maxInfoTX); they are the same four values.
    maxInfoTX = property(lambda self: self.maximumInfoLengthTransmit)
    maxInfoRX = property(lambda self: self.maximumInfoLengthReceive)
    windowSizeTX = property(lambda self: self.windowSizeTransmit)
    windowSizeRX = property(lambda self: self.windowSizeReceive)


class _HdlcSettings(GXHdlcSettings):  # type: ignore[misc]
    # handleSnrmRequest calls settings.hdlc.update(...); 1.0.203 names that method _update.
    def __init__(self, setup: GXDLMSHdlcSetup) -> None:
        super().__init__()
        self._setup = setup

    def update(self, _settings: Any) -> None:
        self._update(self._setup)


class _MeterServer(GXDLMSServer):  # type: ignore[misc]
    """gurux's meter server with an HDLC setup of the standard defaults (max info 128, windows 1)."""

    def __init__(self) -> None:
        super().__init__(True, InterfaceType.HDLC)
        association = GXDLMSAssociationLogicalName()
        # initialize() appends the whole collection to an empty object list, which gurux refuses.
        association.objectList.append(association)
        self.items.append(association)
        self.hdlc = _HdlcSetup()
        self.settings.hdlc = _HdlcSettings(self.hdlc)
        self.initialize()

    def isTarget(self, _server: int, _client: int) -> bool:
        return True

    def onValidateAuthentication(self, *_args: Any) -> None: ...
    def onPreGet(self, _args: Any) -> None: ...
    def onPostGet(self, _args: Any) -> None: ...
    def onFindObject(self, *_args: Any) -> None: ...
    def onPreRead(self, _args: Any) -> None: ...
    def onPostRead(self, _args: Any) -> None: ...
    def onPreWrite(self, _args: Any) -> None: ...
    def onPostWrite(self, _args: Any) -> None: ...
    def onConnected(self, _info: Any) -> None: ...
    def onInvalidConnection(self, _info: Any) -> None: ...
    def onDisconnected(self, _info: Any) -> None: ...
    def onGetAttributeAccess(self, _args: Any) -> int:
        return 3  # read and write

    def onGetMethodAccess(self, _args: Any) -> int:
        return 1  # access

    def onPreAction(self, _args: Any) -> None: ...
    def onPostAction(self, _args: Any) -> None: ...


def hdlc_server_answer(frame: bytes) -> bytes | None:
    """What a fresh gurux meter server (GXDLMSServer, HDLC, logical names) answers to ``frame``.

    gurux 1.0.203's Python server cannot answer an SNRM as shipped: three lookups fail (see
    ``_Reply``, ``_HdlcSetup``, ``_HdlcSettings``); the shims make them succeed with the standard's
    defaults, and every byte of the answer is still written by gurux's own handleSnrmRequest.
    """
    server = _MeterServer()
    reply = _Reply(frame)
    server.handleRequest(reply)
    return None if not reply.reply else bytes(reply.reply)


def hdlc_aarq(client_address: int = 16, server_address: int = 1) -> bytes:
    """The unciphered AARQ in its first I-frame (SSN 0, RSN 0, LLC E6 E6 00)."""
    client = make_client(
        interface=InterfaceType.HDLC, client_address=client_address, server_address=server_address
    )
    return _one(client.aarqRequest())


def hdlc_disc(client_address: int = 16, server_address: int = 1) -> bytes:
    client = make_client(
        interface=InterfaceType.HDLC, client_address=client_address, server_address=server_address
    )
    return _one(client.disconnectRequest(True))


def wrapper_aarq(client_address: int = 16, server_address: int = 1) -> bytes:
    client = make_client(
        interface=InterfaceType.WRAPPER, client_address=client_address, server_address=server_address
    )
    return _one(client.aarqRequest())


# ---------------------------------------------------------------------------------------------------
# Server-side encoders (translator XML -> PDU)

_XML_TYPES = {
    0: "None",
    3: "Boolean",
    4: "BitString",
    5: "Int32",
    6: "UInt32",
    9: "OctetString",
    10: "String",
    12: "StringUTF8",
    15: "Int8",
    16: "Int16",
    17: "UInt8",
    18: "UInt16",
    20: "Int64",
    21: "UInt64",
    22: "Enum",
    25: "DateTime",
    26: "Date",
    27: "Time",
}
_INT_WIDTH = {5: 4, 6: 4, 15: 1, 16: 2, 17: 1, 18: 2, 20: 8, 21: 8, 22: 1}
_SIGNED = {5, 15, 16, 20}


def data_xml(typed: TypedValue) -> str:
    """gurux simple-XML for `(tag, value)`."""
    tag, value = typed
    if tag in (1, 2):
        name = "Array" if tag == 1 else "Structure"
        inner = "".join(data_xml(item) for item in value)
        return f'<{name} Qty="{len(value):02X}">{inner}</{name}>'
    name = _XML_TYPES[tag]
    if tag == 0:
        return "<None />"
    if tag == 3:
        return f'<Boolean Value="{"01" if value else "00"}" />'
    if tag in _INT_WIDTH:
        raw = int(value).to_bytes(_INT_WIDTH[tag], "big", signed=tag in _SIGNED)
        return f'<{name} Value="{raw.hex().upper()}" />'
    if tag in (9, 25, 26, 27):
        return f'<{name} Value="{bytes(value).hex().upper()}" />'
    if tag == 10:
        return f'<{name} Value="{value}" />'
    raise ValueError(f"no XML for data tag {tag}")


def xml_to_pdu(xml: str) -> bytes:
    """GXDLMSTranslator.xmlToPdu; its GXByteBuffer carries capacity padding, so go through the hex form."""
    return bytes.fromhex(GXDLMSTranslator(TranslatorOutputType.SIMPLE_XML).xmlToHexPdu(xml))


def _descriptor(kind: str, class_id: int, obis: bytes, id_name: str, ident: int) -> str:
    return (
        f'<{kind}><ClassId Value="{class_id:04X}" /><InstanceId Value="{obis.hex().upper()}" />'
        f'<{id_name} Value="{ident:02X}" /></{kind}>'
    )


def get_response_normal(value: TypedValue, *, invoke_id_and_priority: int = 0xC1) -> bytes:
    return xml_to_pdu(
        f'<GetResponse><GetResponseNormal><InvokeIdAndPriority Value="{invoke_id_and_priority:02X}" />'
        f"<Result><Data>{data_xml(value)}</Data></Result></GetResponseNormal></GetResponse>"
    )


def _error_name(result: int) -> str:
    return str(GXDLMSTranslator.errorCodeToString(TranslatorOutputType.SIMPLE_XML, result))


def get_response_normal_error(result: int, *, invoke_id_and_priority: int = 0xC1) -> bytes:
    return xml_to_pdu(
        f'<GetResponse><GetResponseNormal><InvokeIdAndPriority Value="{invoke_id_and_priority:02X}" />'
        f'<Result><DataAccessError Value="{_error_name(result)}" /></Result>'
        "</GetResponseNormal></GetResponse>"
    )


def get_response_with_block(
    block: bytes, block_number: int, last_block: bool, *, invoke_id_and_priority: int = 0xC1
) -> bytes:
    return xml_to_pdu(
        f'<GetResponse><GetResponsewithDataBlock><InvokeIdAndPriority Value="{invoke_id_and_priority:02X}" />'
        f'<Result><LastBlock Value="{int(last_block):02X}" /><BlockNumber Value="{block_number:08X}" />'
        f'<Result><RawData Value="{block.hex().upper()}" /></Result></Result>'
        f"</GetResponsewithDataBlock></GetResponse>"
    )


def set_response_normal(result: int = 0, *, invoke_id_and_priority: int = 0xC1) -> bytes:
    return xml_to_pdu(
        f'<SetResponse><SetResponseNormal><InvokeIdAndPriority Value="{invoke_id_and_priority:02X}" />'
        f'<Result Value="{_error_name(result)}" /></SetResponseNormal></SetResponse>'
    )


def action_response_normal(
    result: int = 0, data: TypedValue | None = None, *, invoke_id_and_priority: int = 0xC1
) -> bytes:
    ret = f"<ReturnParameters><Data>{data_xml(data)}</Data></ReturnParameters>" if data is not None else ""
    return xml_to_pdu(
        f'<ActionResponse><ActionResponseNormal><InvokeIdAndPriority Value="{invoke_id_and_priority:02X}" />'
        f'<Result Value="{_error_name(result)}" />{ret}</ActionResponseNormal></ActionResponse>'
    )


def exception_response(state_error: int, service_error: int) -> bytes:
    states = {1: "ServiceNotAllowed", 2: "ServiceUnknown"}
    services = {1: "OperationNotPossible", 2: "ServiceNotSupported", 3: "OtherReason"}
    return xml_to_pdu(
        f'<ExceptionResponse><StateError Value="{states[state_error]}" />'
        f'<ServiceError Value="{services[service_error]}" /></ExceptionResponse>'
    )


def data_notification(long_invoke_id: int, body: TypedValue, date_time: bytes | None = None) -> bytes:
    stamp = date_time.hex().upper() if date_time else ""
    return xml_to_pdu(
        f'<DataNotification><LongInvokeIdAndPriority Value="{long_invoke_id:08X}" />'
        f'<DateTime Value="{stamp}" /><NotificationBody><DataValue>{data_xml(body)}</DataValue>'
        f"</NotificationBody></DataNotification>"
    )


def aare(*, result: int = 0, diagnostic: int = 0, conformance: int = 0, max_pdu_size: int = 0x01F4) -> bytes:
    """Unciphered LN AARE with an InitiateResponse (VAA name 0x0007).

    gurux's translator drops the NegotiatedConformance bits when it turns XML back into an AARE
    (its own pduToXml -> xmlToPdu round trip loses them), so the result always carries conformance 0.
    """
    bits = "".join(
        f'<ConformanceBit Name="{TranslatorSimpleTags.conformancetoString(1 << n)}" />'
        for n in range(24)
        if _reverse24(conformance) & (1 << n)
    )
    return xml_to_pdu(
        f'<AssociationResponse><ApplicationContextName Value="LN" />'
        f'<AssociationResult Value="{result:02X}" /><ResultSourceDiagnostic>'
        f'<ACSEServiceUser Value="{diagnostic:02X}" /></ResultSourceDiagnostic><InitiateResponse>'
        f'<NegotiatedDlmsVersionNumber Value="06" /><NegotiatedConformance>{bits}</NegotiatedConformance>'
        f'<NegotiatedMaxPduSize Value="{max_pdu_size:04X}" /><VaaName Value="0007" />'
        f"</InitiateResponse></AssociationResponse>"
    )


def _reverse24(value: int) -> int:
    """gurux numbers conformance bits from the other end of the 24-bit string than the wire."""
    return int(f"{value:024b}"[::-1], 2)


# ---------------------------------------------------------------------------------------------------
# Decoding


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, GXDateTime):
        return value.value
    if value is None or isinstance(value, (str, float)):
        return value
    if hasattr(value, "value"):
        return _plain(value.value)
    return value


def decode_data(data: bytes) -> Any:
    """The first A-XDR value in `data` by gurux's own reader (_GXCommon.getData, as GXDLMSClient uses it)."""
    info = _GXDataInfo()
    client = make_client()
    return _plain(_GXCommon.getData(client.settings, GXByteBuffer(data), info))


def decode_get_response(
    apdu: bytes, keys: SecurityKeys | None = None, server_system_title: bytes | None = None
) -> Any:
    """A GET response's value the way a gurux user reads it: GXDLMSClient.getData(reply, GXReplyData).

    With `keys` (the client's own) and `server_system_title` the client deciphers glo-get-response.
    Returns the plain value; raw octet-strings stay bytes (no changeType to datetimes).
    """
    client = make_client(keys=keys, server_system_title=server_system_title)
    reply = GXReplyData()
    client.getData(apdu, reply)
    return _plain(reply.value)


def _hexval(node: ET.Element | None) -> bytes:
    if node is None:
        raise ValueError("missing element")
    return bytes.fromhex(node.get("Value", ""))


def _intval(node: ET.Element | None) -> int:
    return int.from_bytes(_hexval(node), "big")


def _xml_data(node: ET.Element) -> Any:
    tag = node.tag
    if tag in ("Array", "Structure"):
        return [_xml_data(child) for child in node]
    value = node.get("Value", "")
    if tag in ("None", "NullData"):
        return None
    if tag == "Boolean":
        return value.lower() in ("true", "1", "01")
    if tag in ("Int8", "Int16", "Int32", "Int64"):
        return int.from_bytes(bytes.fromhex(value), "big", signed=True)
    if tag in ("UInt8", "UInt16", "UInt32", "UInt64", "Enum"):
        return int.from_bytes(bytes.fromhex(value), "big")
    if tag in ("OctetString", "DateTime", "Date", "Time"):
        return bytes.fromhex(value)
    if tag in ("String", "StringUTF8"):
        return value
    raise ValueError(f"no conversion for gurux XML data element {tag}")


def _only_child(node: ET.Element | None) -> Any:
    if node is None:
        return None
    children = list(node)
    if len(children) != 1:
        raise ValueError(f"{node.tag} holds {len(children)} values")
    return _xml_data(children[0])


def _conformance(node: ET.Element | None) -> int:
    if node is None:
        raise ValueError("no conformance")
    total = 0
    for bit in node:
        total |= int(TranslatorSimpleTags.value_ofConformance(bit.get("Name", "")))
    return _reverse24(total)


def _glo_fields(raw: bytes) -> dict[str, Any]:
    return {
        "security_control": raw[0],
        "invocation_counter": int.from_bytes(raw[1:5], "big"),
        "ciphered_text": raw[5:],
    }


def _norm_association(root: ET.Element) -> dict[str, Any]:
    request = root.tag == "AssociationRequest"
    context = root.find("ApplicationContextName")
    mech = root.find("MechanismName")
    auth = root.find("CallingAuthentication" if request else "RespondingAuthentication")
    title = root.find("CallingAPTitle" if request else "RespondingAPTitle")
    init = root.find("InitiateRequest" if request else "InitiateResponse")
    glo = root.find("glo_InitiateRequest" if request else "glo_InitiateResponse")
    out: dict[str, Any] = {
        "apdu": "aarq" if request else "aare",
        "ciphered": "CIPHERING" in (context.get("Value", "") if context is not None else ""),
    }
    if not request:
        out["result"] = _intval(root.find("AssociationResult"))
        diag = root.find("ResultSourceDiagnostic")
        out["diagnostic"] = _intval(diag[0]) if diag is not None and len(diag) else 0
    prefix = "calling" if request else "responding"
    out[f"{prefix}_ap_title"] = _hexval(title) if title is not None else None
    out["mechanism"] = _MECHANISM_NAMES[mech.get("Value", "")] if mech is not None else None
    out[f"{prefix}_authentication_value"] = _hexval(auth) if auth is not None else None
    if request:
        out["initiate_request"] = (
            None
            if init is None
            else {
                "dlms_version": _intval(init.find("ProposedDlmsVersionNumber")),
                "conformance": _conformance(init.find("ProposedConformance")),
                "max_pdu_size": _intval(init.find("ProposedMaxPduSize")),
            }
        )
        out["glo_initiate_request"] = _glo_fields(_hexval(glo)) if glo is not None else None
    else:
        out["initiate_response"] = (
            None
            if init is None
            else {
                "dlms_version": _intval(init.find("NegotiatedDlmsVersionNumber")),
                "conformance": _conformance(init.find("NegotiatedConformance")),
                "max_pdu_size": _intval(init.find("NegotiatedMaxPduSize")),
                "vaa_name": _intval(init.find("VaaName")),
            }
        )
    return out


def _descriptor_fields(node: ET.Element | None, id_name: str, key: str) -> dict[str, Any]:
    if node is None:
        raise ValueError("missing descriptor")
    return {
        "class_id": _intval(node.find("ClassId")),
        "obis": _hexval(node.find("InstanceId")),
        key: _intval(node.find(id_name)),
    }


def _error_value(node: ET.Element | None) -> int:
    if node is None:
        raise ValueError("missing result")
    return int(GXDLMSTranslator.value_ofErrorCode(TranslatorOutputType.SIMPLE_XML, node.get("Value", "")))


def _norm_xdlms(root: ET.Element) -> dict[str, Any]:
    tag = root.tag
    body = root[0] if len(root) else root
    iid = body.find("InvokeIdAndPriority")
    if tag == "GetRequest" and body.tag == "GetRequestNormal":
        access = body.find("AccessSelection")
        return {
            "apdu": "get-request-normal",
            "invoke_id_and_priority": _intval(iid),
            **_descriptor_fields(body.find("AttributeDescriptor"), "AttributeId", "attribute"),
            "access_selector": _intval(access.find("AccessSelector")) if access is not None else None,
            "access_parameters": _only_child(access.find("AccessParameters")) if access is not None else None,
        }
    if tag == "GetRequest" and body.tag == "GetRequestForNextDataBlock":
        return {
            "apdu": "get-request-next",
            "invoke_id_and_priority": _intval(iid),
            "block_number": _intval(body.find("BlockNumber")),
        }
    if tag == "GetResponse" and body.tag == "GetResponseNormal":
        result = body.find("Result")
        if result is not None and result.find("Data") is not None:
            return {
                "apdu": "get-response-normal",
                "invoke_id_and_priority": _intval(iid),
                "data": _only_child(result.find("Data")),
            }
        return {
            "apdu": "get-response-normal-error",
            "invoke_id_and_priority": _intval(iid),
            "result": _error_value(result.find("DataAccessError") if result is not None else None),
        }
    if tag == "GetResponse" and body.tag == "GetResponsewithDataBlock":
        result = body.find("Result")
        if result is None:
            raise ValueError("no result")
        inner = result.find("Result")
        return {
            "apdu": "get-response-with-datablock",
            "invoke_id_and_priority": _intval(iid),
            "last_block": bool(_intval(result.find("LastBlock"))),
            "block_number": _intval(result.find("BlockNumber")),
            "raw_data": _hexval(inner.find("RawData") if inner is not None else None),
        }
    if tag == "SetRequest" and body.tag == "SetRequestNormal":
        return {
            "apdu": "set-request-normal",
            "invoke_id_and_priority": _intval(iid),
            **_descriptor_fields(body.find("AttributeDescriptor"), "AttributeId", "attribute"),
            "value": _only_child(body.find("Value")),
        }
    if tag == "SetResponse" and body.tag == "SetResponseNormal":
        return {
            "apdu": "set-response-normal",
            "invoke_id_and_priority": _intval(iid),
            "result": _error_value(body.find("Result")),
        }
    if tag == "ActionRequest" and body.tag == "ActionRequestNormal":
        return {
            "apdu": "action-request-normal",
            "invoke_id_and_priority": _intval(iid),
            **_descriptor_fields(body.find("MethodDescriptor"), "MethodId", "method"),
            "parameter": _only_child(body.find("MethodInvocationParameters")),
        }
    if tag == "ActionResponse" and body.tag == "ActionResponseNormal":
        ret = body.find("ReturnParameters")
        return {
            "apdu": "action-response-normal",
            "invoke_id_and_priority": _intval(iid),
            "result": _error_value(body.find("Result")),
            "data": _only_child(ret.find("Data")) if ret is not None else None,
        }
    if tag == "ExceptionResponse":
        return {
            "apdu": "exception-response",
            "state_error": int(TranslatorSimpleTags.valueofStateError(_attr(root, "StateError"))),
            "service_error": int(
                TranslatorSimpleTags.valueOfExceptionServiceError(_attr(root, "ServiceError"))
            ),
        }
    if tag == "DataNotification":
        stamp = _hexval(root.find("DateTime"))
        body_node = root.find("NotificationBody")
        return {
            "apdu": "data-notification",
            "long_invoke_id_and_priority": _intval(root.find("LongInvokeIdAndPriority")),
            "date_time": stamp or None,
            "body": _only_child(body_node.find("DataValue") if body_node is not None else None),
        }
    if tag == "ReleaseRequest":
        reason = root.find("Reason")
        return {
            "apdu": "rlrq",
            "reason": _RELEASE_REASONS[reason.get("Value", "")] if reason is not None else None,
        }
    if tag == "ReleaseResponse":
        reason = root.find("Reason")
        return {
            "apdu": "rlre",
            "reason": _RELEASE_REASONS[reason.get("Value", "")] if reason is not None else None,
        }
    raise ValueError(f"no normaliser for gurux XML {tag}/{body.tag}")


def _attr(root: ET.Element, name: str) -> str:
    node = root.find(name)
    if node is None:
        raise ValueError(f"missing {name}")
    return node.get("Value", "")


def _translate(apdu: bytes, keys: SecurityKeys | None) -> str:
    translator = GXDLMSTranslator(TranslatorOutputType.SIMPLE_XML)
    if keys is not None:
        translator.comments = True
        translator.systemTitle = keys.system_title
        translator.serverSystemTitle = keys.system_title
        translator.blockCipherKey = keys.encryption_key
        translator.authenticationKey = keys.authentication_key
    # the translator print()s "Encryption is applied." for ciphered APDUs
    with contextlib.redirect_stdout(io.StringIO()):
        return str(translator.pduToXml(apdu))


_DECRYPTED = re.compile(r"Decrypt(?:ed)? data:\s*([0-9A-F ]+)")


def decode_apdu(apdu: bytes, keys: SecurityKeys | None = None) -> dict[str, Any]:
    """Decode through GXDLMSTranslator.pduToXml (simple XML) and normalise (shape: see tests.peers).

    Ciphered APDUs (glo-*, general-glo) come back as their fields; with `keys` (the sender's system
    title with EK/AK) the translator deciphers and the plaintext, which it only prints inside an XML
    comment, is decoded again into "plain".
    """
    xml = _translate(apdu, None)
    root = ET.fromstring(xml)
    if root.tag.startswith(("glo_", "ded_")) or root.tag == "GeneralGloCiphering":
        plain = None
        if keys is not None:
            # the deciphered APDU only appears in a comment, whose own nested comments make the
            # document ill-formed: take the hex out with a regex
            found = _DECRYPTED.search(_translate(apdu, keys))
            if found is None:
                raise ValueError("gurux did not decipher the APDU")
            plain = decode_apdu(bytes.fromhex(found.group(1).replace(" ", "")))
        if root.tag == "GeneralGloCiphering":
            return {
                "apdu": "general-glo-ciphering",
                "tag": apdu[0],
                "system_title": _hexval(root.find("SystemTitle")),
                **_glo_fields(_hexval(root.find("CipheredService"))),
                "plain": plain,
            }
        return {
            "apdu": "glo-ciphered",
            "tag": apdu[0],
            "system_title": None,
            **_glo_fields(_hexval(root)),
            "plain": plain,
        }
    if root.tag in ("AssociationRequest", "AssociationResponse"):
        return _norm_association(root)
    return _norm_xdlms(root)


# ---------------------------------------------------------------------------------------------------
# Additions for tests/interop


def aarq_with_conformance(conformance: int, max_pdu_size: int = 0xFFFF) -> bytes:
    """Unciphered AARQ from a client proposing `conformance` (wire value) and `max_pdu_size`."""
    from gurux_dlms.enums import Conformance

    client = make_client()
    client.proposedConformance = Conformance(_reverse24(conformance))
    client.maxReceivePDUSize = max_pdu_size
    return _one(client.aarqRequest())


def parse_aare(apdu: bytes) -> dict[str, Any]:
    """What a gurux client keeps from an AARE: parseAareResponse fills its negotiated settings."""
    client = make_client()
    with contextlib.redirect_stdout(io.StringIO()):
        client.parseAareResponse(GXByteBuffer(apdu))
    return {
        "conformance": _reverse24(int(client.negotiatedConformance)),
        "max_pdu_size": int(client.maxReceivePDUSize),
        "dlms_version": int(client.settings.dlmsVersion),
    }


def translate(apdu: bytes) -> str:
    """GXDLMSTranslator.pduToXml of an unciphered APDU (simple XML)."""
    return _translate(apdu, None)


def retranslate(apdu: bytes) -> bytes:
    """pduToXml then xmlToPdu: gurux's own encoding of what it read (equal bytes = every field understood)."""
    return xml_to_pdu(_translate(apdu, None))


def _messages(messages: Any) -> list[bytes]:
    if isinstance(messages, (bytes, bytearray)):
        return [bytes(messages)]
    out: list[bytes] = []
    for item in messages:
        out.extend(_messages(item))
    return out


def get_request_with_list(items: list[tuple[int, bytes, int]]) -> bytes:
    """GET-Request-With-List from GXDLMSClient.readList over (class id, OBIS, attribute) triples."""
    from gurux_dlms.enums import Conformance

    client = make_client()
    client.negotiatedConformance |= Conformance.MULTIPLE_REFERENCES
    return _one(_messages(client.readList([(_object(c, o), a) for c, o, a in items])))


def get_request_by_entry(obis: bytes, first: int, count: int) -> bytes:
    """GET-Request-Normal with entry access from GXDLMSClient.readRowsByEntry on a profile generic."""
    return _one(_messages(make_client().readRowsByEntry(GXDLMSProfileGeneric(_ln(obis)), first, count)))


def gateway_get_request(
    class_id: int, obis: bytes, attribute: int, *, network_id: int, physical_address: bytes
) -> bytes:
    """A read sent through a gateway (GXDLMSClient.gateway): gateway-request 0xE6 around a GET."""
    from gurux_dlms import GXDLMSGateway

    client = make_client()
    gateway = GXDLMSGateway()
    gateway.networkId = network_id
    gateway.physicalDeviceAddress = physical_address
    client.gateway = gateway
    return _one(_messages(client.read(_object(class_id, obis), attribute)))


def decode_get_response_list(apdu: bytes) -> tuple[list[Any], int]:
    """GET-Response-With-List read by GXDLMSClient.getData: the values (None for errors) and the last error."""
    from gurux_dlms.enums import Conformance

    client = make_client()
    client.negotiatedConformance |= Conformance.MULTIPLE_REFERENCES
    reply = GXReplyData()
    client.getData(apdu, reply)
    return [_plain(v) for v in reply.value], int(reply.error)


def _long_octet_string_object(obis: bytes, value: bytes) -> Any:
    from gurux_dlms.enums import DataType
    from gurux_dlms.objects import GXDLMSData

    item = GXDLMSData(_ln(obis))
    item.value = value
    item.setDataType(2, DataType.OCTET_STRING)
    return item


def set_request_blocks(obis: bytes, value: bytes, max_pdu_size: int, *, gbt: bool = False) -> list[bytes]:
    """A write of octet-string `value` to a Data object's attribute 2 that does not fit `max_pdu_size`:
    SET-Request with first datablock / with datablock, or (gbt=True) general-block-transfer blocks."""
    from gurux_dlms.enums import Conformance

    client = make_client()
    client.settings.maxPduSize = max_pdu_size
    if gbt:
        client.negotiatedConformance |= Conformance.GENERAL_BLOCK_TRANSFER
    return _messages(client.write(_long_octet_string_object(obis, value), 2))


def action_request_blocks(obis: bytes, method: int, parameter: bytes, max_pdu_size: int) -> list[bytes]:
    """An ACTION on a Data object with an octet-string parameter too long for `max_pdu_size`: pblocks."""
    from gurux_dlms.enums import DataType

    client = make_client()
    client.settings.maxPduSize = max_pdu_size
    return _messages(client.method(_long_octet_string_object(obis, b""), method, parameter, DataType.OCTET_STRING))


def _sn_client() -> Any:
    from gurux_dlms import GXDLMSClient
    from gurux_dlms.enums import Authentication, Conformance

    client = GXDLMSClient(False, 16, 1, Authentication.NONE, None, InterfaceType.PDU)
    client.negotiatedConformance = (client.negotiatedConformance | Conformance.MULTIPLE_REFERENCES
                                    | Conformance.PARAMETERIZED_ACCESS | Conformance.WRITE | Conformance.READ)
    return client


def sn_requests() -> dict[str, bytes]:
    """gurux's SN client requests of ``tests.protocols.test_sn.GURUX_SN_REQUESTS``, built now."""
    from gurux_dlms.objects import GXDLMSClock, GXDLMSDisconnectControl, GXDLMSProfileGeneric, GXDLMSRegister

    client = _sn_client()
    clock = GXDLMSClock()
    clock.shortName = 0x2BC0
    register = GXDLMSRegister("1.0.1.8.0.255")
    register.shortName = 0x3000
    profile = GXDLMSProfileGeneric("1.0.99.1.0.255")
    profile.shortName = 0x4000
    profile.addCaptureObject(clock, 2, 0)
    relay = GXDLMSDisconnectControl()
    relay.shortName = 0x5000
    register.value = 5

    def one(messages: Any) -> bytes:
        flat = messages[0] if isinstance(messages[0], list) else messages
        (only,) = flat
        return bytes(only)

    return {
        "read-clock-time": one(client.read(clock, 2)),
        "read-list": one(client.readList([(clock, 2), (register, 2), (register, 3)])),
        "read-by-entry": one(client.readRowsByEntry(profile, 1, 10)),
        "disconnect": one(relay.remoteDisconnect(client)),
        "write-register": one(client.write(register, 2)),
    }


def sn_response_value(apdu: bytes) -> Any:
    """What gurux's SN client makes of a ReadResponse/WriteResponse: its value, or ``("error", code)``."""
    client = _sn_client()
    reply = GXReplyData()
    with contextlib.redirect_stdout(io.StringIO()):
        client.getData(GXByteBuffer(apdu), reply)
    if reply.error:
        return ("error", int(reply.error))
    value = reply.value
    return bytes(value) if isinstance(value, bytearray) else value
