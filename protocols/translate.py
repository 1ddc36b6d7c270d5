"""The protocol translator: a captured frame or APDU, as bytes, into a JSON-ready description.

It finds the layers itself: an HDLC frame (starts with 0x7E), a wrapper PDU (version 0x0001 and
a length that matches), an IEC 62056-21 message, or a bare APDU. Ciphered APDUs are deciphered
when keys are given. Raises only ``DecodeError`` (bad bytes) or ``SecurityError`` (wrong keys).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntFlag
from typing import Any

from protocols import iec62056_21
from protocols.apdu import decode_apdu
from protocols.axdr import CompactArray, Data, DataTag, TypeDescription, decode_data_exact
from protocols.cosem_datetime import CosemDate, CosemDateTime, CosemTime
from protocols.errors import DecodeError, DlmsError
from protocols.hdlc import LLC_COMMAND, LLC_RESPONSE, FrameType, HdlcFrame, HdlcParameters
from protocols.obis import ObisCode
from protocols.security import (
    GeneralCiphering,
    GeneralDedCiphering,
    GeneralGloCiphering,
    ServiceSpecificCipheredApdu,
    decipher,
)
from protocols.wrapper import WrapperFrame

__all__ = ["TranslatorKeys", "describe_data", "translate"]

# Fields of the APDU dataclasses that hold the A-XDR encoding of one Data, shown decoded.
_DATA_FIELDS = frozenset(
    {"result", "results", "value", "values", "parameters", "return_parameters", "body", "attribute_value",
     "access_parameters"}
)
# Fields that hold a whole nested APDU (the gateway carries one).
_APDU_FIELDS = frozenset({"apdu"})
_WRAPPER_HEADER = 8


@dataclass(frozen=True, slots=True)
class TranslatorKeys:
    """Keys to decipher with. ``system_title`` is the sender's, needed for service-specific ciphering."""

    encryption_key: bytes
    authentication_key: bytes = b""
    system_title: bytes | None = None


def translate(raw: bytes, keys: TranslatorKeys | None = None) -> dict[str, Any]:
    """Describe ``raw`` layer by layer: ``{"layers": [...], "apdu": {...}}``."""
    raw = bytes(raw)
    if not raw:
        raise DecodeError("nothing to decode", 0)
    layers: list[dict[str, Any]] = []
    if raw[0] == 0x7E:
        return _translate_hdlc(raw, keys)
    if _looks_like_wrapper(raw):
        frame, end = WrapperFrame.decode(raw)
        if end != len(raw):
            raise DecodeError(f"{len(raw) - end} bytes after the wrapper PDU", end)
        layers.append(
            {"layer": "wrapper", "version": frame.version, "source_wport": frame.source,
             "destination_wport": frame.destination, "length": len(frame.apdu)}
        )
        return {"layers": layers, "apdu": describe_apdu(frame.apdu, keys)}
    if raw[:1] in (b"/", b"\x06"):
        message = iec62056_21.decode_message(raw)
        return {"layers": [{"layer": "iec62056-21", **_plain(message)}]}
    return {"layers": layers, "apdu": describe_apdu(raw, keys)}


def _looks_like_wrapper(raw: bytes) -> bool:
    return (
        len(raw) >= _WRAPPER_HEADER
        and raw[0:2] == b"\x00\x01"
        and int.from_bytes(raw[6:8], "big") == len(raw) - _WRAPPER_HEADER
    )


def _translate_hdlc(raw: bytes, keys: TranslatorKeys | None) -> dict[str, Any]:
    frames: list[dict[str, Any]] = []
    information = b""
    pos = 0
    segmented_tail = False
    while pos < len(raw):
        if raw[pos] != 0x7E:
            raise DecodeError("bytes between HDLC frames", pos)
        frame, end = HdlcFrame.decode(raw, pos)
        frames.append(_describe_frame(frame))
        if frame.frame_type in (FrameType.I, FrameType.UI):
            information += frame.information
            segmented_tail = frame.segmented
        # Consecutive frames may share one flag: then the next frame opens on this one's closing flag.
        pos = end - 1 if end < len(raw) and raw[end] != 0x7E else end
    result: dict[str, Any] = {"layers": [{"layer": "hdlc", "frames": frames}]}
    if not information:
        return result
    if segmented_tail:
        result["note"] = "the last I-frame is segmented: the APDU continues in frames not given"
        return result
    if information[:3] in (LLC_COMMAND, LLC_RESPONSE):
        result["layers"].append(
            {"layer": "llc", "direction": "command" if information[:3] == LLC_COMMAND else "response"}
        )
        information = information[3:]
    if information:
        result["apdu"] = describe_apdu(information, keys)
    return result


def _describe_frame(frame: HdlcFrame) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": frame.frame_type.name,
        "destination": _plain(frame.destination),
        "source": _plain(frame.source),
        "poll_final": frame.poll_final,
        "segmented": frame.segmented,
    }
    if frame.frame_type is FrameType.I:
        out["send_sequence"] = frame.send_sequence
    if frame.frame_type in (FrameType.I, FrameType.RR, FrameType.RNR):
        out["receive_sequence"] = frame.receive_sequence
    if frame.frame_type in (FrameType.SNRM, FrameType.UA) and frame.information:
        out["parameters"] = _plain(HdlcParameters.decode(frame.information))
    elif frame.information:
        out["information_length"] = len(frame.information)
    return out


def describe_apdu(raw: bytes, keys: TranslatorKeys | None) -> dict[str, Any]:
    """One APDU as a dict: its type, its fields, its data decoded with types; deciphered with keys."""
    apdu = decode_apdu(raw)
    out: dict[str, Any] = _plain(apdu)
    if isinstance(apdu, ServiceSpecificCipheredApdu | GeneralGloCiphering | GeneralDedCiphering
                  | GeneralCiphering):
        header = apdu.header
        out["security_header"] = {
            "security_control": f"0x{int(header.security_control):02X}",
            "authenticated": header.security_control.authenticated,
            "encrypted": header.security_control.encrypted,
            "invocation_counter": header.invocation_counter,
        }
        if keys is None:
            out["deciphered"] = None
            out["note"] = "ciphered: give --key (and --auth-key, --system-title) to decipher"
            return out
        if isinstance(apdu, ServiceSpecificCipheredApdu):
            title = keys.system_title
        elif isinstance(apdu, GeneralCiphering):
            title = apdu.originator_system_title
        else:
            title = apdu.system_title
        if title is None:
            raise DecodeError("a service-specific ciphered APDU needs the sender's --system-title")
        plain = decipher(apdu.content, system_title=title, encryption_key=keys.encryption_key,
                         authentication_key=keys.authentication_key)
        out["deciphered"] = describe_apdu(plain, keys)
    return out


def describe_data(data: Data) -> dict[str, Any]:
    """A typed Data as ``{"type": "double-long-unsigned", "value": ...}``; profile-like arrays get rows."""
    type_name = data.tag.name.lower().replace("_", "-")
    value = data.value
    if data.tag in (DataTag.ARRAY, DataTag.STRUCTURE):
        out: dict[str, Any] = {"type": type_name, "value": [describe_data(item) for item in value]}
        rows = _profile_rows(data)
        if rows is not None:
            out["rows"] = rows
        return out
    if isinstance(value, CompactArray):
        return {"type": type_name, "description": _describe_type(value.description),
                "value": [describe_data(item) for item in value.elements]}
    return {"type": type_name, "value": _plain(value)}


def _describe_type(desc: TypeDescription) -> Any:
    name = desc.tag.name.lower().replace("_", "-")
    if desc.tag is DataTag.ARRAY:
        return {"array": desc.number_of_elements, "of": _describe_type(desc.children[0])}
    if desc.tag is DataTag.STRUCTURE:
        return {"structure": [_describe_type(child) for child in desc.children]}
    return name


def _profile_rows(data: Data) -> list[list[Any]] | None:
    """Rows of a buffer-like array: structures of equal size whose first member is a date-time."""
    if data.tag is not DataTag.ARRAY or not data.value:
        return None
    width = None
    rows: list[list[Any]] = []
    for row in data.value:
        if row.tag is not DataTag.STRUCTURE or not row.value:
            return None
        if width is None:
            width = len(row.value)
        elif len(row.value) != width:
            return None
        first = row.value[0]
        if first.tag is DataTag.OCTET_STRING and len(first.value) == 12:
            time: Any = _time_text(CosemDateTime.decode(first.value))
        elif first.tag is DataTag.DATE_TIME:
            time = _time_text(first.value)
        elif first.tag is DataTag.NULL_DATA:
            time = None
        else:
            return None
        rows.append([time, *(_plain(item.to_python()) for item in row.value[1:])])
    return rows


def _time_text(value: CosemDateTime) -> str:
    moment = value.to_datetime()
    return moment.isoformat() if moment is not None else str(value)


def _decoded_field(raw: bytes) -> Any:
    try:
        return describe_data(decode_data_exact(raw))
    except DecodeError as exc:
        return {"raw": raw.hex().upper(), "error": str(exc)}


def _plain(value: Any, field: str | None = None) -> Any:
    """JSON-ready form of any message value."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        if field in _DATA_FIELDS:
            return _decoded_field(raw)
        if field in _APDU_FIELDS:
            try:
                return describe_apdu(raw, None)
            except DlmsError as exc:
                return {"raw": raw.hex().upper(), "error": str(exc)}
        return raw.hex().upper()
    if isinstance(value, bool) or value is None or (isinstance(value, int | float | str) and not isinstance(
        value, Enum
    )):
        return value
    if isinstance(value, IntFlag):
        return {"value": int(value), "flags": [flag.name for flag in type(value) if flag in value and flag.name]}
    if isinstance(value, Enum):
        return value.name if value.name else value.value
    if isinstance(value, ObisCode):
        return str(value)
    if isinstance(value, Data):
        return describe_data(value)
    if isinstance(value, CosemDateTime | CosemDate | CosemTime):
        text: dict[str, Any] = {"text": str(value)}
        if isinstance(value, CosemDateTime):
            moment = value.to_datetime()
            text["instant"] = moment.isoformat() if moment is not None else None
        return text
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"type": type(value).__name__}
        for item in dataclasses.fields(value):
            out[item.name] = _plain(getattr(value, item.name), item.name)
        return out
    if isinstance(value, tuple | list):
        return [_plain(item, field) for item in value]
    return str(value)
