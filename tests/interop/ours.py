"""Our decoders' results in the normalised shape the peer adapters use (see tests.peers), for comparison."""

from __future__ import annotations

from typing import Any

from protocols import axdr
from protocols.acse import Aare, Aarq, ApplicationContextName, Rlre, Rlrq
from protocols.apdu import decode_apdu
from protocols.axdr import Data, DataTag
from protocols.security import (
    CipheredApduTag,
    GeneralGloCiphering,
    ServiceSpecificCipheredApdu,
    decipher,
)
from protocols.xdlms.action import ActionRequestNormal, ActionResponseNormal
from protocols.xdlms.common import DataAccessResult
from protocols.xdlms.errors import ExceptionResponse
from protocols.xdlms.get import GetRequestNext, GetRequestNormal, GetResponseNormal, GetResponseWithDatablock
from protocols.xdlms.initiate import InitiateRequest, InitiateResponse
from protocols.xdlms.notification import DataNotification
from protocols.xdlms.set import SetRequestNormal, SetResponseNormal
from tests.peers import SecurityKeys, TypedValue

__all__ = ["normalise", "plain", "plain_bytes", "to_data"]

_CIPHERED_CONTEXTS = (
    ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
    ApplicationContextName.SHORT_NAME_WITH_CIPHERING,
)


def plain(data: Data) -> Any:
    """A decoded ``Data`` made plain the way the adapters do (lists, ints, bytes, str, bool, None)."""
    if data.tag in (DataTag.ARRAY, DataTag.STRUCTURE):
        return [plain(item) for item in data.value]
    if data.tag == DataTag.COMPACT_ARRAY:
        return [plain(item) for item in data.value.elements]
    if data.tag in (DataTag.DATE_TIME, DataTag.DATE, DataTag.TIME):
        return data.value.encode()
    return data.value


def plain_bytes(encoded: bytes) -> Any:
    return plain(axdr.decode_data_exact(encoded))


def to_data(typed: TypedValue) -> Data:
    """Our ``Data`` for the adapters' typed form ``(tag, value)``."""
    tag, value = typed
    if tag in (DataTag.ARRAY, DataTag.STRUCTURE):
        return Data(DataTag(tag), tuple(to_data(item) for item in value))
    return Data(DataTag(tag), value)


def _initiate_request(info: object) -> dict[str, int] | None:
    if not isinstance(info, InitiateRequest):
        return None
    return {
        "dlms_version": info.proposed_dlms_version_number,
        "conformance": int(info.proposed_conformance),
        "max_pdu_size": info.client_max_receive_pdu_size,
    }


def _initiate_response(info: object) -> dict[str, int] | None:
    if not isinstance(info, InitiateResponse):
        return None
    return {
        "dlms_version": info.negotiated_dlms_version_number,
        "conformance": int(info.negotiated_conformance),
        "max_pdu_size": info.server_max_receive_pdu_size,
        "vaa_name": info.vaa_name,
    }


def _glo_fields(content: bytes) -> dict[str, Any]:
    return {
        "security_control": content[0],
        "invocation_counter": int.from_bytes(content[1:5], "big"),
        "ciphered_text": content[5:],
    }


def _mechanism(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _decipher(content: bytes, system_title: bytes, keys: SecurityKeys) -> bytes:
    return decipher(
        content,
        system_title=system_title,
        encryption_key=keys.encryption_key,
        authentication_key=keys.authentication_key,
    )


def normalise(buf: bytes, keys: SecurityKeys | None = None) -> dict[str, Any]:
    """Decode ``buf`` with ``protocols.apdu.decode_apdu`` and give the adapters' normalised dict.

    With ``keys`` (the sender's system title, EK and AK) ciphered APDUs are deciphered into "plain".
    """
    apdu = decode_apdu(buf)
    if isinstance(apdu, Aarq):
        info = apdu.user_information
        glo = (
            info
            if isinstance(info, ServiceSpecificCipheredApdu) and info.tag == CipheredApduTag.GLO_INITIATE_REQUEST
            else None
        )
        return {
            "apdu": "aarq",
            "ciphered": apdu.application_context_name in _CIPHERED_CONTEXTS,
            "calling_ap_title": apdu.calling_ap_title,
            "mechanism": _mechanism(apdu.mechanism_name),
            "calling_authentication_value": apdu.calling_authentication_value,
            "initiate_request": _initiate_request(info),
            "glo_initiate_request": _glo_fields(glo.content) if glo is not None else None,
        }
    if isinstance(apdu, Aare):
        return {
            "apdu": "aare",
            "ciphered": apdu.application_context_name in _CIPHERED_CONTEXTS,
            "result": int(apdu.result),
            "diagnostic": int(apdu.diagnostic),
            "responding_ap_title": apdu.responding_ap_title,
            "mechanism": _mechanism(apdu.mechanism_name),
            "responding_authentication_value": apdu.responding_authentication_value,
            "initiate_response": _initiate_response(apdu.user_information),
        }
    if isinstance(apdu, Rlrq):
        return {"apdu": "rlrq", "reason": None if apdu.reason is None else int(apdu.reason)}
    if isinstance(apdu, Rlre):
        return {"apdu": "rlre", "reason": None if apdu.reason is None else int(apdu.reason)}
    if isinstance(apdu, GetRequestNormal):
        access = apdu.access_selection
        descriptor = apdu.attribute_descriptor
        return {
            "apdu": "get-request-normal",
            "invoke_id_and_priority": apdu.invoke_id_and_priority.to_byte(),
            "class_id": descriptor.class_id,
            "obis": bytes(descriptor.instance_id),
            "attribute": descriptor.attribute_id,
            "access_selector": access.access_selector if access is not None else None,
            "access_parameters": plain(access.parameters()) if access is not None else None,
        }
    if isinstance(apdu, GetRequestNext):
        return {
            "apdu": "get-request-next",
            "invoke_id_and_priority": apdu.invoke_id_and_priority.to_byte(),
            "block_number": apdu.block_number,
        }
    if isinstance(apdu, GetResponseNormal):
        iip = apdu.invoke_id_and_priority.to_byte()
        if isinstance(apdu.result, DataAccessResult):
            return {"apdu": "get-response-normal-error", "invoke_id_and_priority": iip, "result": int(apdu.result)}
        return {"apdu": "get-response-normal", "invoke_id_and_priority": iip, "data": plain(apdu.value())}
    if isinstance(apdu, GetResponseWithDatablock):
        if isinstance(apdu.result, DataAccessResult):
            raise ValueError("the adapters' shape has no datablock error")
        return {
            "apdu": "get-response-with-datablock",
            "invoke_id_and_priority": apdu.invoke_id_and_priority.to_byte(),
            "last_block": apdu.last_block,
            "block_number": apdu.block_number,
            "raw_data": apdu.result,
        }
    if isinstance(apdu, SetRequestNormal):
        descriptor = apdu.attribute_descriptor
        return {
            "apdu": "set-request-normal",
            "invoke_id_and_priority": apdu.invoke_id_and_priority.to_byte(),
            "class_id": descriptor.class_id,
            "obis": bytes(descriptor.instance_id),
            "attribute": descriptor.attribute_id,
            "value": plain(apdu.data()),
        }
    if isinstance(apdu, SetResponseNormal):
        return {
            "apdu": "set-response-normal",
            "invoke_id_and_priority": apdu.invoke_id_and_priority.to_byte(),
            "result": int(apdu.result),
        }
    if isinstance(apdu, ActionRequestNormal):
        method = apdu.method_descriptor
        parameters = apdu.parameters_value()
        return {
            "apdu": "action-request-normal",
            "invoke_id_and_priority": apdu.invoke_id_and_priority.to_byte(),
            "class_id": method.class_id,
            "obis": bytes(method.instance_id),
            "method": method.method_id,
            "parameter": plain(parameters) if parameters is not None else None,
        }
    if isinstance(apdu, ActionResponseNormal):
        response = apdu.response
        returned = response.return_parameters
        if isinstance(returned, DataAccessResult):
            raise ValueError("the adapters' shape has no data-access-result in return parameters")
        return {
            "apdu": "action-response-normal",
            "invoke_id_and_priority": apdu.invoke_id_and_priority.to_byte(),
            "result": int(response.result),
            "data": plain_bytes(returned) if returned is not None else None,
        }
    if isinstance(apdu, ExceptionResponse):
        return {
            "apdu": "exception-response",
            "state_error": int(apdu.state_error),
            "service_error": int(apdu.service_error),
        }
    if isinstance(apdu, DataNotification):
        return {
            "apdu": "data-notification",
            "long_invoke_id_and_priority": apdu.long_invoke_id_and_priority.to_int(),
            "date_time": apdu.date_time.encode() if apdu.date_time is not None else None,
            "body": plain(apdu.value()),
        }
    if isinstance(apdu, ServiceSpecificCipheredApdu):
        return {
            "apdu": "glo-ciphered",
            "tag": int(apdu.tag),
            "system_title": None,
            **_glo_fields(apdu.content),
            "plain": normalise(_decipher(apdu.content, keys.system_title, keys)) if keys is not None else None,
        }
    if isinstance(apdu, GeneralGloCiphering):
        return {
            "apdu": "general-glo-ciphering",
            "tag": int(apdu.TAG),
            "system_title": apdu.system_title,
            **_glo_fields(apdu.content),
            "plain": normalise(_decipher(apdu.content, apdu.system_title, keys)) if keys is not None else None,
        }
    raise ValueError(f"no normaliser for our {type(apdu).__name__}")
