"""Unsolicited APDUs pushed by a meter: DataNotification (0x0F) and EventNotificationRequest (0xC2)."""

from __future__ import annotations

from dataclasses import dataclass

from protocols import axdr
from protocols.axdr import Data
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError
from protocols.xdlms.common import (
    CosemAttributeDescriptor,
    LongInvokeIdAndPriority,
    Reader,
    Writer,
    XdlmsTag,
    decode_entry,
    read_tag,
)

__all__ = [
    "DataNotification",
    "EventNotificationRequest",
    "decode_data_notification",
    "decode_event_notification_request",
]


# A date-time written as a tagged Data octet-string: tag 0x09, length 12, then the 12 bytes.
_TAGGED_DATE_TIME = b"\x09\x0c"


@dataclass(frozen=True, slots=True)
class DataNotification:
    """A push: long invoke id, optional date-time, and the body as encoded ``Data`` bytes.

    ``date_time_tagged`` records a date-time that came as a tagged octet-string (``09 0C`` and
    12 bytes) instead of the bare octet-string the Green Book gives (``0C`` and 12 bytes). Kaifa
    meters on the Norwegian HAN port write it so; it is read leniently and written back the same
    way, so that encode(decode(b)) == b holds for those pushes too.
    """

    long_invoke_id_and_priority: LongInvokeIdAndPriority
    date_time: CosemDateTime | None
    body: bytes
    date_time_tagged: bool = False

    def value(self) -> Data:
        return axdr.decode_data_exact(self.body)

    def encode(self) -> bytes:
        w = Writer(XdlmsTag.DATA_NOTIFICATION)
        w.raw(self.long_invoke_id_and_priority.to_int().to_bytes(4, "big"))
        # The date-time is an octet-string: empty when absent, else the 12 bytes.
        if self.date_time is not None and self.date_time_tagged:
            w.raw(_TAGGED_DATE_TIME + self.date_time.encode())
        else:
            w.octet_string(b"" if self.date_time is None else self.date_time.encode())
        w.data(self.body)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> DataNotification:
        return decode_data_notification(buf)

    @classmethod
    def read(cls, r: Reader) -> DataNotification:
        read_tag(r, XdlmsTag.DATA_NOTIFICATION)
        iip = LongInvokeIdAndPriority.from_int(r.u32("long-invoke-id-and-priority"))
        at = r.pos
        # Only 0 or 12 bytes are valid here, so a length byte of 9 followed by 12 can only be the
        # tagged form some meters write; reading it so loses nothing a strict reading would keep.
        tagged = r.buf[at : at + 2] == _TAGGED_DATE_TIME and len(r.buf) - at >= 2 + 12
        if tagged:
            r.pos += 2
            raw_time = r.raw(12, "date-time")
        else:
            raw_time = r.octet_string("date-time")
        if len(raw_time) not in (0, 12):
            raise DecodeError(f"date-time of {len(raw_time)} bytes, expected 0 or 12", at)
        date_time = CosemDateTime.decode(raw_time) if raw_time else None
        return cls(iip, date_time, r.tail_data(), tagged)


def decode_data_notification(buf: bytes) -> DataNotification:
    """Decode a whole Data-Notification APDU (tag 0x0F)."""
    return decode_entry(DataNotification.read, buf)


@dataclass(frozen=True, slots=True)
class EventNotificationRequest:
    """An attribute value the meter reports on its own, with an optional time stamp."""

    attribute_descriptor: CosemAttributeDescriptor
    attribute_value: bytes
    time: CosemDateTime | None = None

    def value(self) -> Data:
        return axdr.decode_data_exact(self.attribute_value)

    def encode(self) -> bytes:
        w = Writer(XdlmsTag.EVENT_NOTIFICATION_REQUEST)
        if self.time is None:
            w.u8(0)
        else:
            w.u8(1)
            w.octet_string(self.time.encode())
        self.attribute_descriptor.write(w)
        w.data(self.attribute_value)
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> EventNotificationRequest:
        return decode_event_notification_request(buf)

    @classmethod
    def read(cls, r: Reader) -> EventNotificationRequest:
        read_tag(r, XdlmsTag.EVENT_NOTIFICATION_REQUEST)
        time = None
        if r.optional():
            at = r.pos
            raw_time = r.octet_string("time")
            if len(raw_time) != 12:
                raise DecodeError(f"time of {len(raw_time)} bytes, expected 12", at)
            time = CosemDateTime.decode(raw_time)
        descriptor = CosemAttributeDescriptor.read(r)
        return cls(descriptor, r.tail_data(), time)


def decode_event_notification_request(buf: bytes) -> EventNotificationRequest:
    """Decode a whole Event-Notification-Request APDU (tag 0xC2)."""
    return decode_entry(EventNotificationRequest.read, buf)
