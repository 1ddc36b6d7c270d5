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


@dataclass(frozen=True, slots=True)
class DataNotification:
    """A push: long invoke id, optional date-time, and the body as encoded ``Data`` bytes."""

    long_invoke_id_and_priority: LongInvokeIdAndPriority
    date_time: CosemDateTime | None
    body: bytes

    def value(self) -> Data:
        return axdr.decode_data_exact(self.body)

    def encode(self) -> bytes:
        w = Writer(XdlmsTag.DATA_NOTIFICATION)
        w.raw(self.long_invoke_id_and_priority.to_int().to_bytes(4, "big"))
        # The date-time is an octet-string: empty when absent, else the 12 bytes.
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
        raw_time = r.octet_string("date-time")
        if len(raw_time) not in (0, 12):
            raise DecodeError(f"date-time of {len(raw_time)} bytes, expected 0 or 12", at)
        date_time = CosemDateTime.decode(raw_time) if raw_time else None
        return cls(iip, date_time, r.tail_data())


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
