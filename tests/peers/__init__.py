"""Adapters that drive the two independent DLMS implementations (gurux-dlms, dlms-cosem) from our tests.

Both peers are test-only (GPLv2 and BSL): import them only under tests/ and bench/.
Every decoder in the two adapter modules returns the same *normalised* shape, built only from plain
Python values (dict, list, int, bool, bytes, str, None), so that a test can compare the two peers with
each other and with our own decoders:

    {"apdu": "aarq", "ciphered": bool, "calling_ap_title": bytes | None, "mechanism": int | None,
     "calling_authentication_value": bytes | None,
     "initiate_request": {"dlms_version": int, "conformance": int, "max_pdu_size": int} | None,
     "glo_initiate_request": {"security_control": int, "invocation_counter": int,
                              "ciphered_text": bytes} | None}
    {"apdu": "aare", "ciphered": bool, "result": int, "diagnostic": int, "responding_ap_title": bytes | None,
     "mechanism": int | None, "responding_authentication_value": bytes | None,
     "initiate_response": {"dlms_version": int, "conformance": int, "max_pdu_size": int,
                           "vaa_name": int} | None}
    {"apdu": "rlrq", "reason": int | None}            {"apdu": "rlre", "reason": int | None}
    {"apdu": "get-request-normal", "invoke_id_and_priority": int, "class_id": int, "obis": bytes,
     "attribute": int, "access_selector": int | None, "access_parameters": <value> | None}
    {"apdu": "get-request-next", "invoke_id_and_priority": int, "block_number": int}
    {"apdu": "get-response-normal", "invoke_id_and_priority": int, "data": <value>}
    {"apdu": "get-response-normal-error", "invoke_id_and_priority": int, "result": int}
    {"apdu": "get-response-with-datablock", "invoke_id_and_priority": int, "last_block": bool,
     "block_number": int, "raw_data": bytes}
    {"apdu": "set-request-normal", "invoke_id_and_priority": int, "class_id": int, "obis": bytes,
     "attribute": int, "value": <value>}
    {"apdu": "set-response-normal", "invoke_id_and_priority": int, "result": int}
    {"apdu": "action-request-normal", "invoke_id_and_priority": int, "class_id": int, "obis": bytes,
     "method": int, "parameter": <value> | None}
    {"apdu": "action-response-normal", "invoke_id_and_priority": int, "result": int, "data": <value> | None}
    {"apdu": "exception-response", "state_error": int, "service_error": int}
    {"apdu": "data-notification", "long_invoke_id_and_priority": int, "date_time": bytes | None,
     "body": <value>}
    {"apdu": "glo-ciphered" | "general-glo-ciphering", "tag": int, "system_title": bytes | None,
     "security_control": int, "invocation_counter": int, "ciphered_text": bytes,
     "plain": <normalised plain APDU> | None}

A <value> is A-XDR data made plain: array and structure -> list, octet-string -> bytes, integers of any
width and enum -> int, boolean -> bool, visible-string -> str, null-data -> None. Both peers lose the
type tag in the process (an unsigned 32 and an unsigned 16 holding 5 both give 5); compare types with
our own decoder, not with the peers.

To *encode* data, both adapters take the typed form `(tag, value)` where tag is the A-XDR type number
(1 array, 2 structure, 6 double-long-unsigned, 9 octet-string, 18 long-unsigned...) and the value of an
array or structure is a list of such pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "GREEN_BOOK_AK",
    "GREEN_BOOK_EK",
    "GREEN_BOOK_SYSTEM_TITLE",
    "SUITE0",
    "SecurityKeys",
    "TypedValue",
]

# Security suite 0 example keys of the Green Book (also used by gurux and dlms-cosem in their examples).
GREEN_BOOK_SYSTEM_TITLE = bytes.fromhex("4D4D4D0000BC614E")
GREEN_BOOK_EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GREEN_BOOK_AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")

# (A-XDR type tag, value); the value of an array/structure is a list of TypedValue.
TypedValue = tuple[int, Any]


@dataclass(frozen=True, slots=True)
class SecurityKeys:
    """Suite-0 material one side uses: its own system title plus the global EK and AK."""

    system_title: bytes
    encryption_key: bytes
    authentication_key: bytes


SUITE0 = SecurityKeys(GREEN_BOOK_SYSTEM_TITLE, GREEN_BOOK_EK, GREEN_BOOK_AK)
