"""The protocol translator: a captured frame or APDU, as bytes, into a JSON-ready description.

It finds the framing itself and says which it found (``"framing"``): HDLC frames (0x7E; several
in a row are joined, segmented I/UI frames into one APDU, general-block-transfer blocks
reassembled), a wrapper PDU (version 0x0001 and a length that matches), M-Bus long frames that
carry DLMS (68 L L 68, segments joined by their sequence), an IEC 62056-21 message, the LLC header
of a HAN port followed by an APDU (E6 E7 00 / E6 E6 00), or a bare APDU. Bare A-XDR data is
decoded by ``translate_data``. Ciphered APDUs are deciphered when keys are given.

Anything that cannot be decoded raises: ``DecodeError`` (bad bytes, with the offset where known)
or ``SecurityError`` (wrong keys); an error is never returned inside the description.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntFlag, StrEnum
from typing import Any

from protocols import iec62056_21, mbus
from protocols.apdu import decode_apdu
from protocols.axdr import CompactArray, Data, DataTag, TypeDescription, decode_data_exact
from protocols.cosem_datetime import CosemDate, CosemDateTime, CosemTime
from protocols.errors import DecodeError
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
from protocols.xdlms.common import XdlmsTag
from protocols.xdlms.gbt import GbtReceiver, GeneralBlockTransfer, decode_general_block_transfer
from protocols.xdlms.notification import DataNotification

__all__ = ["Framing", "TranslatorKeys", "describe_data", "translate", "translate_data"]

# Fields of the APDU dataclasses that hold the A-XDR encoding of one Data, shown decoded.
_DATA_FIELDS = frozenset(
    {"result", "results", "value", "values", "parameters", "return_parameters", "body", "attribute_value",
     "access_parameters"}
)
# Fields that hold a whole nested APDU (the gateway carries one).
_APDU_FIELDS = frozenset({"apdu"})
_WRAPPER_HEADER = 8
_LLC_HEADERS = (LLC_COMMAND, LLC_RESPONSE)


class Framing(StrEnum):
    """The framing the translator recognised, as it appears in the output's ``"framing"``."""

    HDLC = "hdlc"
    WRAPPER = "wrapper"
    MBUS = "m-bus"
    IEC62056_21 = "iec62056-21"
    LLC = "han-llc"
    APDU = "apdu"
    DATA = "a-xdr-data"


@dataclass(frozen=True, slots=True)
class TranslatorKeys:
    """Keys to decipher with. ``system_title`` is the sender's, needed for service-specific ciphering."""

    encryption_key: bytes
    authentication_key: bytes = b""
    system_title: bytes | None = None


def translate(raw: bytes, keys: TranslatorKeys | None = None) -> dict[str, Any]:
    """Describe ``raw`` layer by layer: ``{"framing": ..., "layers": [...], "apdu": {...}}``.

    Several APDUs (several HDLC or M-Bus messages in one capture) come as ``"apdus"`` instead of
    ``"apdu"``; ``"notes"`` says what was read leniently or how an ambiguity was settled.
    """
    raw = bytes(raw)
    if not raw:
        raise DecodeError("nothing to decode", 0)
    try:
        return _translate(raw, keys)
    except (IndexError, ValueError, struct.error) as exc:  # the one place these become a typed error
        raise DecodeError(f"undecodable input ({type(exc).__name__}: {exc})") from None


def translate_data(raw: bytes) -> dict[str, Any]:
    """Describe bare A-XDR ``Data`` (a value as a GET returns it, without any APDU around it)."""
    raw = bytes(raw)
    if not raw:
        raise DecodeError("nothing to decode", 0)
    try:
        described = describe_data(decode_data_exact(raw))
    except (IndexError, ValueError, struct.error) as exc:  # as in translate: one typed error
        raise DecodeError(f"undecodable data ({type(exc).__name__}: {exc})") from None
    return {"framing": Framing.DATA.value, "layers": [], "data": described}


def _translate(raw: bytes, keys: TranslatorKeys | None) -> dict[str, Any]:
    if raw[0] == 0x7E:
        return _translate_hdlc(raw, keys)
    if _looks_like_wrapper(raw):
        frame, end = WrapperFrame.decode(raw)
        if end != len(raw):
            raise DecodeError(f"{len(raw) - end} bytes after the wrapper PDU", end)
        layer = {"layer": "wrapper", "version": frame.version, "source_wport": frame.source,
                 "destination_wport": frame.destination, "length": len(frame.apdu)}
        return _result(Framing.WRAPPER, [layer], [frame.apdu], keys, _WRAPPER_HEADER)
    if mbus.looks_like_mbus(raw):
        return _translate_mbus(raw, keys)
    if raw[:1] in (b"/", b"\x06"):
        message = iec62056_21.decode_message(raw)
        return {"framing": Framing.IEC62056_21.value, "layers": [{"layer": "iec62056-21", **_plain(message)}]}
    if raw[:3] in _LLC_HEADERS:
        return _translate_llc(raw, keys)
    return _result(Framing.APDU, [], [raw], keys)


def _looks_like_wrapper(raw: bytes) -> bool:
    return (
        len(raw) >= _WRAPPER_HEADER
        and raw[0:2] == b"\x00\x01"
        and int.from_bytes(raw[6:8], "big") == len(raw) - _WRAPPER_HEADER
    )


def _llc_layer(header: bytes) -> dict[str, Any]:
    return {"layer": "llc", "direction": "command" if header == LLC_COMMAND else "response"}


def _translate_llc(raw: bytes, keys: TranslatorKeys | None) -> dict[str, Any]:
    """E6 E7 00 / E6 E6 00 open both the LLC header of a HAN port and (0xE6) a gateway request.

    Read as a gateway request, the same bytes are network id 0xE6/0xE7, an empty physical address
    and then exactly the APDU the LLC reading finds: both readings parse or fail together, so what
    parses cannot tell them apart. An empty address names no meter, so the LLC reading is taken,
    and the output says so; a gateway request with a real address (length byte not 0) never
    reaches here and is decoded as one.
    """
    out = _result(Framing.LLC, [_llc_layer(raw[:3])], [raw[3:]], keys, len(LLC_COMMAND))
    out["notes"].insert(0, f"{raw[:3].hex(' ').upper()} read as the LLC header of a HAN port (IEC 62056-46): "
                           "as a gateway request it would address no meter (empty physical address)")
    return out


def _translate_mbus(raw: bytes, keys: TranslatorKeys | None) -> dict[str, Any]:
    frames = mbus.decode_frames(raw)
    messages = mbus.join_segments(frames)
    described = []
    for segments, _apdu in messages:
        for segment in segments:
            frame = segment.frame
            described.append({
                "control": f"0x{frame.control:02X}", "address": f"0x{frame.address:02X}",
                "control_information": f"0x{frame.control_information:02X}", "segment": segment.sequence,
                "last_segment": segment.last, "source_tsap": segment.source_tsap,
                "destination_tsap": segment.destination_tsap, "length": len(segment.apdu_part),
                "length_wrapped": frame.length_wrapped,
                **({"transport_header": segment.tpl_header.hex().upper()} if segment.tpl_header else {}),
            })
    layers = [{"layer": "m-bus", "frames": described}]
    out = _result(Framing.MBUS, layers, [apdu for _segments, apdu in messages], keys)
    wrapped = [str(index + 1) for index, frame in enumerate(frames) if frame.length_wrapped]
    if wrapped:
        out["notes"].append(f"M-Bus frame(s) {', '.join(wrapped)}: the L field holds the length modulo 256; "
                            "read by the checksum and stop byte at L + 256")
    return out


def _translate_hdlc(raw: bytes, keys: TranslatorKeys | None) -> dict[str, Any]:
    frames: list[dict[str, Any]] = []
    messages: list[bytes] = []
    information = b""
    pending_since = 0
    llc: dict[str, Any] | None = None
    pos = 0
    while pos < len(raw):
        if raw[pos] != 0x7E:
            raise DecodeError("bytes between HDLC frames", pos)
        frame, end = HdlcFrame.decode(raw, pos)
        frames.append(_describe_frame(frame))
        if frame.frame_type in (FrameType.I, FrameType.UI):
            if not information:
                pending_since = len(frames)
            information += frame.information
            if not frame.segmented:
                # The LLC header opens the first segment of each APDU, never the later ones.
                if information[:3] in _LLC_HEADERS:
                    llc = _llc_layer(information[:3])
                    information = information[3:]
                if information:
                    messages.append(information)
                information = b""
        # Consecutive frames may share one flag: then the next frame opens on this one's closing flag.
        pos = end - 1 if end < len(raw) and raw[end] != 0x7E else end
    if information:
        raise DecodeError(f"HDLC frame {len(frames)} is segmented: the APDU begun in frame {pending_since} "
                          "continues in frames not given", len(raw))
    layers: list[dict[str, Any]] = [{"layer": "hdlc", "frames": frames}]
    if llc is not None:
        layers.append(llc)
    link_notes = [f"HDLC frame {index} ({frame['type']}) parameters: {note}"
                  for index, frame in enumerate(frames, 1) for note in frame.get("parameter_notes", ())]
    if not messages:
        return {"framing": Framing.HDLC.value, "layers": layers, "notes": link_notes}
    out = _result(Framing.HDLC, layers, messages, keys)
    out["notes"][:0] = link_notes
    return out


def _result(framing: Framing, layers: list[dict[str, Any]], messages: list[bytes],
            keys: TranslatorKeys | None, apdu_offset: int = 0) -> dict[str, Any]:
    """The description of the APDUs the link layer delivered, GBT blocks reassembled first.

    ``apdu_offset`` is where a lone APDU starts in the input (after an LLC header or a wrapper
    header), so that its errors give offsets in the input; APDUs joined from several frames keep
    offsets within the joined APDU, and their error says so ("in APDU n").
    """
    apdus, blocks = _reassemble(messages)
    if blocks:
        layers = [*layers, {"layer": "general-block-transfer", "blocks": blocks}]
    notes: list[str] = []
    described = []
    for index, apdu in enumerate(apdus):
        try:
            described.append(describe_apdu(apdu, keys, notes))
        except DecodeError as exc:
            if framing in (Framing.APDU, Framing.LLC, Framing.WRAPPER) and not blocks:
                raise _within("in the APDU", exc, apdu_offset) from None
            raise _within(f"in APDU {index + 1}", exc, None) from None
    out: dict[str, Any] = {"framing": framing.value, "layers": layers}
    if len(described) == 1:
        out["apdu"] = described[0]
    else:
        out["apdus"] = described
    out["notes"] = notes
    return out


def _reassemble(messages: list[bytes]) -> tuple[list[bytes], list[dict[str, Any]]]:
    """APDUs from link-layer messages: general-block-transfer streams joined by ``GbtReceiver``.

    A capture of pushes may hold several GBT streams; each starts again at block 1. A block out
    of sequence, or a stream without its last block, means the capture lost bytes: an error.
    """
    apdus: list[bytes] = []
    blocks: list[dict[str, Any]] = []
    receiver: GbtReceiver | None = None
    for index, message in enumerate(messages):
        if not message:
            raise DecodeError(f"message {index + 1} carries an empty APDU")
        if message[0] != XdlmsTag.GENERAL_BLOCK_TRANSFER:
            if receiver is not None:
                raise DecodeError(f"message {index + 1} interrupts a general-block-transfer stream at block "
                                  f"{receiver.last_received}")
            apdus.append(message)
            continue
        try:
            block = decode_general_block_transfer(message)
        except DecodeError as exc:
            raise _within(f"in general-block-transfer message {index + 1}", exc, None) from None
        blocks.append({"block_number": block.block_number, "last_block": block.last_block,
                       "streaming": block.streaming, "window": block.window,
                       "block_number_ack": block.block_number_ack, "length": len(block.block_data)})
        if receiver is None:
            if not block.block_data and block.last_block:
                apdus.append(message)  # an acknowledgement: nothing to reassemble, shown as the block
                continue
            if block.block_number != 1:
                raise DecodeError(f"general-block-transfer stream starts at block {block.block_number}: "
                                  "the blocks before it are not given")
            receiver = GbtReceiver()
        _receive_block(receiver, block)
        if receiver.complete:
            apdus.append(receiver.apdu())
            receiver = None
    if receiver is not None:
        raise DecodeError(f"general-block-transfer stream stops at block {receiver.last_received}: "
                          "its last block is not given")
    return apdus, blocks


def _receive_block(receiver: GbtReceiver, block: GeneralBlockTransfer) -> None:
    expected = receiver.last_received + 1
    receiver.receive(block)  # what it would acknowledge does not matter in a capture
    if receiver.last_received != expected:
        if block.block_number == 1:
            raise DecodeError(f"general-block-transfer block 1 starts a new stream while the one before stops "
                              f"at block {expected - 1}: its later blocks are not given")
        raise DecodeError(f"general-block-transfer block {block.block_number} where {expected} was expected")


def _within(where: str, exc: DecodeError, shift: int | None = 0) -> DecodeError:
    """The same error, saying which part of the input it is in.

    With ``shift`` the offset becomes one in the enclosing bytes; with ``shift=None`` it stays one
    within that part, written into the message so no outer layer shifts it again.
    """
    text = str(exc)
    suffix = f" (at offset {exc.offset})"
    if exc.offset is not None and text.endswith(suffix):
        text = text[: -len(suffix)]
    if exc.offset is None:
        return DecodeError(f"{where}: {text}")
    if shift is None:
        return DecodeError(f"{where} (at offset {exc.offset} within it): {text}")
    return DecodeError(f"{where}: {text}", exc.offset + shift)


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
        # Read as the link reads it: leniently, naming what was odd (a station would still connect).
        parameters, odd = HdlcParameters.read_lenient(frame.information)
        out["parameters"] = _plain(parameters)
        if odd:
            out["parameter_notes"] = list(odd)
    elif frame.information:
        out["information_length"] = len(frame.information)
    return out


def describe_apdu(raw: bytes, keys: TranslatorKeys | None, notes: list[str] | None = None) -> dict[str, Any]:
    """One APDU as a dict: its type, its fields, its data decoded with types; deciphered with keys.

    ``notes`` collects what was read leniently (e.g. a push's date-time as a tagged octet-string).
    """
    notes = [] if notes is None else notes
    apdu = decode_apdu(raw)
    out: dict[str, Any] = _plain(apdu)
    if isinstance(apdu, DataNotification) and apdu.date_time_tagged:
        notes.append("the DataNotification's date-time is a tagged octet-string (09 0C + 12 bytes, as Kaifa "
                     "meters write it) instead of the bare octet-string; read leniently")
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
        try:
            out["deciphered"] = describe_apdu(plain, keys, notes)
        except DecodeError as exc:
            raise _within("in the deciphered APDU", exc, None) from None
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


def _decoded_field(raw: bytes, field: str) -> Any:
    try:
        return describe_data(decode_data_exact(raw))
    except DecodeError as exc:
        raise _within(f"in its {field.replace('_', ' ')}", exc, None) from None


def _plain(value: Any, field: str | None = None) -> Any:
    """JSON-ready form of any message value."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        if field in _DATA_FIELDS:
            return _decoded_field(raw, field)
        if field in _APDU_FIELDS:
            try:
                return describe_apdu(raw, None)
            except DecodeError as exc:
                raise _within("in the APDU it carries", exc, None) from None
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
