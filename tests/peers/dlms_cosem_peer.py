"""Adapter over dlms-cosem 25.1.0 (test-only peer): build client/server APDUs, decode them to plain values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dlms_cosem import cosem, dlms_data, enumerations, security
from dlms_cosem.connection import XDlmsApduFactory
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.cosem.selective_access import RangeDescriptor
from dlms_cosem.hdlc import frames
from dlms_cosem.hdlc.address import HdlcAddress
from dlms_cosem.protocol import acse, wrappers, xdlms

from tests.peers import SecurityKeys, TypedValue

__all__ = [
    "CLOCK_OBIS",
    "PeerUnsupported",
    "aarq",
    "action_request_normal",
    "action_response_normal",
    "aare",
    "cipher",
    "data_notification",
    "decipher",
    "decode_apdu",
    "decode_data",
    "decode_hdlc_frame",
    "decode_wrapper",
    "encode_data",
    "exception_response",
    "general_glo_ciphering",
    "get_request_next",
    "get_request_normal",
    "get_response_last_block",
    "get_response_normal",
    "get_response_normal_error",
    "get_response_with_block",
    "glo_initiate_request",
    "hdlc_disc",
    "hdlc_i_frame",
    "hdlc_rr",
    "hdlc_snrm",
    "rlre",
    "rlrq",
    "set_request_normal",
    "set_response_normal",
    "wrapper",
]

CLOCK_OBIS = bytes.fromhex("0000010000FF")

# dlms-cosem's standard conformance proposal for a client with GET/SET/ACTION, block transfer and
# selective access; built from its own Conformance class so the bits come from the library.
_DEFAULT_CONFORMANCE = xdlms.Conformance(
    general_protection=True,
    block_transfer_with_get_or_read=True,
    block_transfer_with_set_or_write=True,
    block_transfer_with_action=True,
    selective_access=True,
    get=True,
    set=True,
    action=True,
)


class PeerUnsupported(Exception):
    """dlms-cosem has no encoder/decoder for what was asked (recorded in tests/peers/README.md)."""


def _iid(invoke_id_and_priority: int) -> xdlms.InvokeIdAndPriority:
    return xdlms.InvokeIdAndPriority.from_bytes(bytes([invoke_id_and_priority]))


def _obis(obis: bytes) -> cosem.Obis:
    return cosem.Obis.from_bytes(obis)


def _conformance(wire_value: int | None) -> xdlms.Conformance:
    if wire_value is None:
        return _DEFAULT_CONFORMANCE
    return xdlms.Conformance.from_bytes(b"\x00" + wire_value.to_bytes(3, "big"))


def _conformance_int(conformance: xdlms.Conformance) -> int:
    return int.from_bytes(conformance.to_bytes()[1:], "big")


def _sc(value: int) -> security.SecurityControlField:
    return security.SecurityControlField.from_bytes(bytes([value]))


# ---------------------------------------------------------------------------------------------------
# A-XDR data


_SIMPLE_DATA: dict[int, type[Any]] = {
    0: dlms_data.NullData,
    3: dlms_data.BooleanData,
    5: dlms_data.DoubleLongData,
    6: dlms_data.DoubleLongUnsignedData,
    9: dlms_data.OctetStringData,
    10: dlms_data.VisibleStringData,
    15: dlms_data.IntegerData,
    16: dlms_data.LongData,
    17: dlms_data.UnsignedIntegerData,
    18: dlms_data.UnsignedLongData,
    20: dlms_data.Long64Data,
    21: dlms_data.UnsignedLong64Data,
    22: dlms_data.EnumData,
}


def _data_object(typed: TypedValue) -> Any:
    tag, value = typed
    if tag == 1:
        return dlms_data.DataArray([_data_object(item) for item in value])
    if tag == 2:
        return dlms_data.DataStructure([_data_object(item) for item in value])
    klass = _SIMPLE_DATA.get(tag)
    if klass is None:
        raise PeerUnsupported(f"dlms-cosem adapter has no encoder for data tag {tag}")
    return klass(value)


def encode_data(typed: TypedValue) -> bytes:
    """A-XDR bytes of `(tag, value)` by dlms-cosem's data classes.

    Beware: dlms-cosem writes the length of an octet/visible string as one raw byte, so a string of
    128 bytes or more comes out wrong (see README); keep such values out of comparisons.
    """
    return bytes(_data_object(typed).to_bytes())


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def decode_data(data: bytes) -> Any:
    """The first A-XDR value in `data`, as plain Python (see tests.peers for the shape)."""
    parsed = dlms_data.DlmsDataParser().parse(data, limit=1)
    if not parsed:
        raise ValueError("no data")
    return _plain(parsed[0].to_python())


def _decode_optional_data(data: bytes | None) -> Any:
    return decode_data(data) if data else None


# ---------------------------------------------------------------------------------------------------
# Client-side encoders


def aarq(
    *,
    mechanism: int = 0,
    password: bytes | None = None,
    keys: SecurityKeys | None = None,
    invocation_counter: int = 0,
    challenge: bytes | None = None,
    conformance: int | None = None,
    max_pdu_size: int = 0xFFFF,
) -> bytes:
    """AARQ: mechanism 0 (none), 1 (LLS with `password`) or 5 (HLS-GMAC, suite 0).

    For HLS-GMAC the InitiateRequest is glo-ciphered (security control 0x30) with `keys` and
    `invocation_counter`, the calling AP title is `keys.system_title` and the calling
    authentication value is `challenge` (CtoS), as dlms-cosem's own DlmsConnection does.
    """
    initiate = xdlms.InitiateRequest(
        proposed_conformance=_conformance(conformance), client_max_receive_pdu_size=max_pdu_size
    )
    if mechanism == 0:
        return bytes(
            acse.ApplicationAssociationRequest(user_information=acse.UserInformation(initiate)).to_bytes()
        )
    if mechanism == 1:
        if password is None:
            raise ValueError("LLS needs a password")
        return bytes(
            acse.ApplicationAssociationRequest(
                user_information=acse.UserInformation(initiate),
                authentication=enumerations.AuthenticationMechanism.LLS,
                authentication_value=password,
            ).to_bytes()
        )
    if mechanism == 5:
        if keys is None or challenge is None:
            raise ValueError("HLS-GMAC needs keys and a challenge")
        glo = glo_initiate_request(initiate.to_bytes(), keys, invocation_counter)
        return bytes(
            acse.ApplicationAssociationRequest(
                user_information=acse.UserInformation(xdlms.GlobalCipherInitiateRequest.from_bytes(glo)),
                system_title=keys.system_title,
                authentication=enumerations.AuthenticationMechanism.HLS_GMAC,
                authentication_value=challenge,
                ciphered=True,
            ).to_bytes()
        )
    raise PeerUnsupported(f"adapter builds AARQ for mechanisms 0, 1, 5, not {mechanism}")


def glo_initiate_request(plain: bytes, keys: SecurityKeys, invocation_counter: int, sc: int = 0x30) -> bytes:
    """glo-initiateRequest (0x21) around an encoded InitiateRequest."""
    text = cipher(plain, keys, invocation_counter, sc)
    return bytes(xdlms.GlobalCipherInitiateRequest(_sc(sc), invocation_counter, text).to_bytes())


def get_request_normal(
    class_id: int,
    obis: bytes,
    attribute: int,
    *,
    invoke_id_and_priority: int = 0xC1,
    range_from: datetime | None = None,
    range_to: datetime | None = None,
) -> bytes:
    """GET-Request-Normal; with range_from/range_to, selective access 1 (range) on the clock
    (class 8, 0.0.1.0.0.255, attribute 2, data index 0) and all columns.

    dlms-cosem writes the datetimes with day-of-week 0xFF, hundredths from microseconds, deviation
    = -utcoffset (0x8000 if naive) and clock status 0x00.
    """
    access = None
    if range_from is not None or range_to is not None:
        if range_from is None or range_to is None:
            raise ValueError("give both range_from and range_to")
        clock = cosem.CosemAttribute(enumerations.CosemInterface(8), _obis(CLOCK_OBIS), 2)
        access = RangeDescriptor(CaptureObject(clock, 0), range_from, range_to)
    return bytes(
        xdlms.GetRequestNormal(
            cosem.CosemAttribute(enumerations.CosemInterface(class_id), _obis(obis), attribute),
            _iid(invoke_id_and_priority),
            access,
        ).to_bytes()
    )


def get_request_next(block_number: int, *, invoke_id_and_priority: int = 0xC1) -> bytes:
    return bytes(xdlms.GetRequestNext(block_number, _iid(invoke_id_and_priority)).to_bytes())


def set_request_normal(
    class_id: int, obis: bytes, attribute: int, value: TypedValue, *, invoke_id_and_priority: int = 0xC1
) -> bytes:
    return bytes(
        xdlms.SetRequestNormal(
            cosem.CosemAttribute(enumerations.CosemInterface(class_id), _obis(obis), attribute),
            encode_data(value),
            None,
            _iid(invoke_id_and_priority),
        ).to_bytes()
    )


def action_request_normal(
    class_id: int,
    obis: bytes,
    method: int,
    parameter: TypedValue | None = None,
    *,
    invoke_id_and_priority: int = 0xC1,
) -> bytes:
    return bytes(
        xdlms.ActionRequestNormal(
            cosem.CosemMethod(enumerations.CosemInterface(class_id), _obis(obis), method),
            encode_data(parameter) if parameter is not None else None,
            _iid(invoke_id_and_priority),
        ).to_bytes()
    )


def rlrq(reason: int | None = 0) -> bytes:
    why = enumerations.ReleaseRequestReason(reason) if reason is not None else None
    return bytes(acse.ReleaseRequest(reason=why).to_bytes())


# ---------------------------------------------------------------------------------------------------
# Server-side encoders


def aare(
    *,
    result: int = 0,
    diagnostic: int = 0,
    conformance: int = 0x00501F,
    max_pdu_size: int = 0x01F4,
) -> bytes:
    """AARE without security, accepting (result 0) or rejecting with an acse-service-user diagnostic."""
    from dlms_cosem.protocol.acse.aare import ApplicationAssociationResponse

    initiate = xdlms.InitiateResponse(_conformance(conformance), max_pdu_size)
    return bytes(
        ApplicationAssociationResponse(
            result=enumerations.AssociationResult(result),
            result_source_diagnostics=enumerations.AcseServiceUserDiagnostics(diagnostic),
            user_information=acse.UserInformation(initiate),
        ).to_bytes()
    )


def rlre(reason: int | None = 0) -> bytes:
    why = enumerations.ReleaseResponseReason(reason) if reason is not None else None
    return bytes(acse.ReleaseResponse(reason=why).to_bytes())


def get_response_normal(data: bytes, *, invoke_id_and_priority: int = 0xC1) -> bytes:
    """GET-Response-Normal around already-encoded A-XDR `data`.

    dlms-cosem 25.1.0 cannot do it: GetResponseNormal.to_bytes appends the invoke-id *bytes* to a
    bytearray and raises TypeError. Kept so the defect stays visible (the self-check asserts it).
    """
    try:
        return bytes(xdlms.GetResponseNormal(data, _iid(invoke_id_and_priority)).to_bytes())
    except TypeError as exc:
        raise PeerUnsupported(f"dlms-cosem GetResponseNormal.to_bytes is broken: {exc}") from exc


def get_response_normal_error(result: int, *, invoke_id_and_priority: int = 0xC1) -> bytes:
    return bytes(
        xdlms.GetResponseNormalWithError(
            enumerations.DataAccessResult(result), _iid(invoke_id_and_priority)
        ).to_bytes()
    )


def get_response_with_block(block: bytes, block_number: int, *, invoke_id_and_priority: int = 0xC1) -> bytes:
    """A non-last data block (last-block = FALSE)."""
    return bytes(xdlms.GetResponseWithBlock(block, block_number, _iid(invoke_id_and_priority)).to_bytes())


def get_response_last_block(block: bytes, block_number: int, *, invoke_id_and_priority: int = 0xC1) -> bytes:
    return bytes(xdlms.GetResponseLastBlock(block, block_number, _iid(invoke_id_and_priority)).to_bytes())


def set_response_normal(result: int = 0, *, invoke_id_and_priority: int = 0xC1) -> bytes:
    return bytes(
        xdlms.SetResponseNormal(
            enumerations.DataAccessResult(result), _iid(invoke_id_and_priority)
        ).to_bytes()
    )


def action_response_normal(
    result: int = 0, data: TypedValue | None = None, *, invoke_id_and_priority: int = 0xC1
) -> bytes:
    status = enumerations.ActionResultStatus(result)
    if data is None:
        return bytes(xdlms.ActionResponseNormal(status, _iid(invoke_id_and_priority)).to_bytes())
    return bytes(
        xdlms.ActionResponseNormalWithData(status, encode_data(data), _iid(invoke_id_and_priority)).to_bytes()
    )


def exception_response(state_error: int, service_error: int) -> bytes:
    return bytes(
        xdlms.ExceptionResponse(
            enumerations.StateException(state_error), enumerations.ServiceException(service_error)
        ).to_bytes()
    )


def data_notification(long_invoke_id: int, body: TypedValue, date_time: datetime | None = None) -> bytes:
    """DataNotification (0x0F); `long_invoke_id` is the whole 32-bit field."""
    from dlms_cosem.protocol.xdlms.data_notification import LongInvokeIdAndPriority

    liid = LongInvokeIdAndPriority.from_bytes(long_invoke_id.to_bytes(4, "big"))
    return bytes(xdlms.DataNotification(liid, date_time, encode_data(body)).to_bytes())


# ---------------------------------------------------------------------------------------------------
# Ciphering (suite 0). dlms-cosem only models general-glo-ciphering (0xDB) and the glo-initiate
# request/response; the service-specific glo-/ded- APDUs (0xC8, 0xCC...) are built here from its
# security.encrypt/decrypt, which is what a dlms-cosem user has to do.


def cipher(plain: bytes, keys: SecurityKeys, invocation_counter: int, sc: int = 0x30) -> bytes:
    """Ciphertext || 12-byte tag (security control 0x30: authenticated and encrypted)."""
    return bytes(
        security.encrypt(
            _sc(sc),
            keys.system_title,
            invocation_counter,
            keys.encryption_key,
            plain,
            keys.authentication_key,
        )
    )


def decipher(text_and_tag: bytes, keys: SecurityKeys, invocation_counter: int, sc: int = 0x30) -> bytes:
    return bytes(
        security.decrypt(
            _sc(sc),
            keys.system_title,
            invocation_counter,
            keys.encryption_key,
            text_and_tag,
            keys.authentication_key,
        )
    )


def general_glo_ciphering(plain: bytes, keys: SecurityKeys, invocation_counter: int, sc: int = 0x30) -> bytes:
    text = cipher(plain, keys, invocation_counter, sc)
    return bytes(xdlms.GeneralGlobalCipher(keys.system_title, _sc(sc), invocation_counter, text).to_bytes())


# ---------------------------------------------------------------------------------------------------
# Decoding


def _opt_bytes(value: bytes | bytearray | None) -> bytes | None:
    return bytes(value) if value is not None else None


def _attribute_fields(attribute: Any) -> dict[str, Any]:
    return {
        "class_id": int(attribute.interface),
        "obis": bytes(attribute.instance.to_bytes()),
    }


def _initiate_request(content: Any) -> dict[str, Any]:
    return {
        "dlms_version": content.proposed_dlms_version_number,
        "conformance": _conformance_int(content.proposed_conformance),
        "max_pdu_size": content.client_max_receive_pdu_size,
    }


def _glo(content: Any) -> dict[str, Any]:
    return {
        "security_control": content.security_control.to_bytes()[0],
        "invocation_counter": content.invocation_counter,
        "ciphered_text": bytes(content.ciphered_text),
    }


def _norm_aarq(apdu: Any) -> dict[str, Any]:
    content = apdu.user_information.content if apdu.user_information else None
    return {
        "apdu": "aarq",
        "ciphered": apdu.ciphered,
        "calling_ap_title": _opt_bytes(apdu.system_title),
        "mechanism": int(apdu.authentication) if apdu.authentication is not None else None,
        "calling_authentication_value": _opt_bytes(apdu.authentication_value),
        "initiate_request": _initiate_request(content)
        if isinstance(content, xdlms.InitiateRequest)
        else None,
        "glo_initiate_request": _glo(content)
        if isinstance(content, xdlms.GlobalCipherInitiateRequest)
        else None,
    }


def _norm_aare(apdu: Any) -> dict[str, Any]:
    content = apdu.user_information.content if apdu.user_information else None
    initiate = None
    if isinstance(content, xdlms.InitiateResponse):
        initiate = {
            "dlms_version": content.negotiated_dlms_version_number,
            "conformance": _conformance_int(content.negotiated_conformance),
            "max_pdu_size": content.server_max_receive_pdu_size,
            "vaa_name": 7,  # dlms-cosem does not keep the vaa-name; it only supports LN (0x0007)
        }
    return {
        "apdu": "aare",
        "ciphered": apdu.ciphered,
        "result": int(apdu.result),
        "diagnostic": int(apdu.result_source_diagnostics),
        "responding_ap_title": _opt_bytes(apdu.system_title),
        "mechanism": int(apdu.authentication) if apdu.authentication is not None else None,
        "responding_authentication_value": _opt_bytes(apdu.authentication_value),
        "initiate_response": initiate,
    }


def _norm_get_request_normal(apdu: Any) -> dict[str, Any]:
    selector = None
    parameters = None
    access = apdu.access_selection
    if access is not None:
        selector = access.ACCESS_DESCRIPTOR
        # dlms-cosem parses the range into datetimes; re-read the raw parameters from its own
        # encoding so both peers show the same plain value.
        parameters = decode_data(access.to_bytes()[1:])
    return {
        "apdu": "get-request-normal",
        "invoke_id_and_priority": apdu.invoke_id_and_priority.to_bytes()[0],
        **_attribute_fields(apdu.cosem_attribute),
        "attribute": apdu.cosem_attribute.attribute,
        "access_selector": selector,
        "access_parameters": parameters,
    }


def _iid_of(apdu: Any) -> int:
    raw = apdu.invoke_id_and_priority.to_bytes()
    return raw if isinstance(raw, int) else raw[0]


def _normalise(apdu: Any, keys: SecurityKeys | None) -> dict[str, Any]:
    handlers: dict[type[Any], Callable[[Any], dict[str, Any]]] = {
        acse.ApplicationAssociationRequest: _norm_aarq,
        acse.ApplicationAssociationResponse: _norm_aare,
        acse.ReleaseRequest: lambda a: {
            "apdu": "rlrq",
            "reason": int(a.reason) if a.reason is not None else None,
        },
        acse.ReleaseResponse: lambda a: {
            "apdu": "rlre",
            "reason": int(a.reason) if a.reason is not None else None,
        },
        xdlms.GetRequestNormal: _norm_get_request_normal,
        xdlms.GetRequestNext: lambda a: {
            "apdu": "get-request-next",
            "invoke_id_and_priority": _iid_of(a),
            "block_number": a.block_number,
        },
        xdlms.GetResponseNormal: lambda a: {
            "apdu": "get-response-normal",
            "invoke_id_and_priority": _iid_of(a),
            "data": decode_data(a.data),
        },
        xdlms.GetResponseNormalWithError: lambda a: {
            "apdu": "get-response-normal-error",
            "invoke_id_and_priority": _iid_of(a),
            "result": int(a.error),
        },
        xdlms.GetResponseWithBlock: lambda a: {
            "apdu": "get-response-with-datablock",
            "invoke_id_and_priority": _iid_of(a),
            "last_block": False,
            "block_number": a.block_number,
            "raw_data": bytes(a.data),
        },
        xdlms.GetResponseLastBlock: lambda a: {
            "apdu": "get-response-with-datablock",
            "invoke_id_and_priority": _iid_of(a),
            "last_block": True,
            "block_number": a.block_number,
            "raw_data": bytes(a.data),
        },
        xdlms.SetRequestNormal: lambda a: {
            "apdu": "set-request-normal",
            "invoke_id_and_priority": _iid_of(a),
            **_attribute_fields(a.cosem_attribute),
            "attribute": a.cosem_attribute.attribute,
            "value": decode_data(a.data),
        },
        xdlms.SetResponseNormal: lambda a: {
            "apdu": "set-response-normal",
            "invoke_id_and_priority": _iid_of(a),
            "result": int(a.result),
        },
        xdlms.ActionRequestNormal: lambda a: {
            "apdu": "action-request-normal",
            "invoke_id_and_priority": _iid_of(a),
            **_attribute_fields(a.cosem_method),
            "method": a.cosem_method.method,
            "parameter": _decode_optional_data(a.data),
        },
        xdlms.ActionResponseNormal: lambda a: {
            "apdu": "action-response-normal",
            "invoke_id_and_priority": _iid_of(a),
            "result": int(a.status),
            "data": None,
        },
        xdlms.ActionResponseNormalWithData: lambda a: {
            "apdu": "action-response-normal",
            "invoke_id_and_priority": _iid_of(a),
            "result": int(a.status),
            "data": _decode_optional_data(a.data),
        },
        xdlms.ExceptionResponse: lambda a: {
            "apdu": "exception-response",
            "state_error": int(a.state_error),
            "service_error": int(a.service_error),
        },
        xdlms.DataNotification: lambda a: {
            "apdu": "data-notification",
            "long_invoke_id_and_priority": int.from_bytes(a.long_invoke_id_and_priority.to_bytes(), "big"),
            # dlms-cosem turns the date-time into a datetime; give back its own re-encoding
            "date_time": _dn_datetime(a.date_time),
            "body": decode_data(a.body),
        },
    }
    if isinstance(apdu, xdlms.GeneralGlobalCipher):
        plain = None
        if keys is not None:
            plain = decode_apdu(bytes(apdu.to_plain_apdu(keys.encryption_key, keys.authentication_key)))
        return {
            "apdu": "general-glo-ciphering",
            "tag": 0xDB,
            "system_title": _opt_bytes(apdu.system_title),
            **_glo(apdu),
            "plain": plain,
        }
    handler = handlers.get(type(apdu))
    if handler is None:
        raise PeerUnsupported(f"no normaliser for dlms-cosem {type(apdu).__name__}")
    return handler(apdu)


def _dn_datetime(value: datetime | None) -> bytes | None:
    from dlms_cosem import time as dlms_time

    return bytes(dlms_time.datetime_to_bytes(value)) if value is not None else None


# Service-specific global ciphering tags dlms-cosem cannot parse: glo-get/set/action request and
# response, glo-event-notification; ded- ones are 8 higher.
_GLO_SERVICE_TAGS = frozenset({0xC8, 0xC9, 0xCB, 0xCC, 0xCD, 0xCF, 0xCA, 0xD0, 0xD1, 0xD3, 0xD4, 0xD5, 0xD7})


def decode_apdu(apdu: bytes, keys: SecurityKeys | None = None) -> dict[str, Any]:
    """Decode with dlms-cosem's XDlmsApduFactory and normalise (shape: see tests.peers).

    Service-specific glo-/ded- APDUs (0xC8..0xD7) are not known to dlms-cosem: they are split by hand
    (length, SC, IC, text) and, with `keys`, deciphered by dlms-cosem's security.decrypt; `keys` is
    the *sender's* system title plus EK/AK. Any exception dlms-cosem raises is let through: the
    point of the peer is to see its real behaviour.
    """
    if apdu and apdu[0] in _GLO_SERVICE_TAGS:
        length, pos = _ber_length(apdu, 1)
        body = apdu[pos : pos + length]
        if len(body) != length or length < 5:
            raise ValueError("truncated ciphered APDU")
        plain = None
        if keys is not None:
            plain = decode_apdu(decipher(body[5:], keys, int.from_bytes(body[1:5], "big"), body[0]))
        return {
            "apdu": "glo-ciphered",
            "tag": apdu[0],
            "system_title": None,
            "security_control": body[0],
            "invocation_counter": int.from_bytes(body[1:5], "big"),
            "ciphered_text": bytes(body[5:]),
            "plain": plain,
        }
    return _normalise(XDlmsApduFactory.apdu_from_bytes(apdu), keys)


def _ber_length(buf: bytes, pos: int) -> tuple[int, int]:
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    return int.from_bytes(buf[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


# ---------------------------------------------------------------------------------------------------
# HDLC and wrapper


def _addresses(client: int, server_logical: int, server_physical: int | None) -> tuple[Any, Any]:
    server = HdlcAddress(server_logical, server_physical, "server")
    return server, HdlcAddress(client, None, "client")


def hdlc_snrm(client: int = 16, server_logical: int = 1, server_physical: int | None = None) -> bytes:
    """SNRM from client to server; dlms-cosem sends it without the parameter-negotiation field."""
    dst, src = _addresses(client, server_logical, server_physical)
    return bytes(frames.SetNormalResponseModeFrame(dst, src).to_bytes())


def hdlc_i_frame(
    payload: bytes,
    ssn: int,
    rsn: int,
    client: int = 16,
    server_logical: int = 1,
    server_physical: int | None = None,
    *,
    segmented: bool = False,
) -> bytes:
    """Client I-frame; `payload` must already carry the LLC header E6 E6 00 (dlms-cosem does not add it)."""
    dst, src = _addresses(client, server_logical, server_physical)
    return bytes(
        frames.InformationFrame(
            dst, src, payload, segmented, True, send_sequence_number=ssn, receive_sequence_number=rsn
        ).to_bytes()
    )


def hdlc_rr(rsn: int, client: int = 16, server_logical: int = 1, server_physical: int | None = None) -> bytes:
    dst, src = _addresses(client, server_logical, server_physical)
    return bytes(frames.ReceiveReadyFrame(dst, src, receive_sequence_number=rsn).to_bytes())


def hdlc_disc(client: int = 16, server_logical: int = 1, server_physical: int | None = None) -> bytes:
    dst, src = _addresses(client, server_logical, server_physical)
    return bytes(frames.DisconnectFrame(dst, src).to_bytes())


def decode_hdlc_frame(frame: bytes) -> dict[str, Any]:
    """One whole frame (flags included) as the *client* receives it: UA, I, RR or DISC... from the server.

    Returns {"type", "destination": client address, "source": (logical, physical), "ssn", "rsn",
    "segmented", "final", "information"}.
    """
    control = _control_byte(frame)
    klass: type[Any]
    if control & 0x01 == 0:
        klass = frames.InformationFrame
    elif control & 0x0F == 0x01:
        klass = frames.ReceiveReadyFrame
    elif control & 0xEF == 0x63:
        klass = frames.UnNumberedAcknowledgmentFrame
    elif control & 0xEF == 0x43:
        klass = frames.DisconnectFrame
    else:
        raise PeerUnsupported(f"dlms-cosem has no class for HDLC control {control:#04x}")
    parsed = klass.from_bytes(frame)
    return {
        "type": {
            frames.InformationFrame: "I",
            frames.ReceiveReadyFrame: "RR",
            frames.UnNumberedAcknowledgmentFrame: "UA",
            frames.DisconnectFrame: "DISC",
        }[klass],
        "destination": parsed.destination_address.logical_address,
        "source": (parsed.source_address.logical_address, parsed.source_address.physical_address),
        "ssn": getattr(parsed, "send_sequence_number", None),
        "rsn": getattr(parsed, "receive_sequence_number", None),
        "segmented": parsed.segmented,
        "final": parsed.final,
        "information": bytes(parsed.payload or b""),
    }


def _control_byte(frame: bytes) -> int:
    pos = 3
    for _ in range(2):  # destination then source address, each ends on a byte with bit 0 set
        while not frame[pos] & 0x01:
            pos += 1
        pos += 1
    return frame[pos]


def wrapper(apdu: bytes, source_wport: int = 16, destination_wport: int = 1) -> bytes:
    header = wrappers.WrapperHeader(source_wport, destination_wport, len(apdu))
    return bytes(wrappers.WrapperProtocolDataUnit(apdu, header).to_bytes())


def decode_wrapper(frame: bytes) -> dict[str, Any]:
    pdu = wrappers.WrapperProtocolDataUnit.from_bytes(frame)
    header = pdu.wrapper_header
    return {
        "version": header.version,
        "source_wport": header.source_wport,
        "destination_wport": header.destination_wport,
        "apdu": bytes(pdu.data),
    }
