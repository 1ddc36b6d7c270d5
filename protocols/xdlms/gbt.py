"""General block transfer (0xE0): the APDU, and sans-IO helpers that split and reassemble with windows."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import EncodeError, StateError
from protocols.xdlms.common import Reader, Writer, XdlmsTag, decode_entry, read_tag

__all__ = [
    "GbtReceiver",
    "GbtSender",
    "GeneralBlockTransfer",
    "decode_general_block_transfer",
    "split_into_blocks",
]

_LAST_BLOCK = 0x80
_STREAMING = 0x40
_WINDOW = 0x3F


@dataclass(frozen=True, slots=True)
class GeneralBlockTransfer:
    """One GBT block: block-control (last-block bit 7, streaming bit 6, window bits 0-5),
    block-number, block-number-ack (both long-unsigned) and block-data (octet-string)."""

    last_block: bool
    streaming: bool
    window: int
    block_number: int
    block_number_ack: int
    block_data: bytes

    def encode(self) -> bytes:
        if not 0 <= self.window <= _WINDOW:
            raise EncodeError(f"GBT window {self.window} outside 0-63")
        w = Writer(XdlmsTag.GENERAL_BLOCK_TRANSFER)
        w.u8((_LAST_BLOCK if self.last_block else 0) | (_STREAMING if self.streaming else 0) | self.window)
        w.u16(self.block_number, "block number")
        w.u16(self.block_number_ack, "block number ack")
        w.octet_string(bytes(self.block_data))
        return w.getvalue()

    @classmethod
    def decode(cls, buf: bytes) -> GeneralBlockTransfer:
        return decode_general_block_transfer(buf)

    @classmethod
    def read(cls, r: Reader) -> GeneralBlockTransfer:
        read_tag(r, XdlmsTag.GENERAL_BLOCK_TRANSFER)
        control = r.u8("block-control")
        return cls(
            bool(control & _LAST_BLOCK),
            bool(control & _STREAMING),
            control & _WINDOW,
            r.u16("block number"),
            r.u16("block number ack"),
            r.octet_string("block data"),
        )


def decode_general_block_transfer(buf: bytes) -> GeneralBlockTransfer:
    """Decode a whole General-Block-Transfer APDU (tag 0xE0)."""
    return decode_entry(GeneralBlockTransfer.read, buf)


def split_into_blocks(
    apdu: bytes,
    block_size: int,
    *,
    window: int = 1,
    receive_window: int = 1,
    first_block_number: int = 1,
    block_number_ack: int = 0,
) -> list[GeneralBlockTransfer]:
    """Cut ``apdu`` into GBT blocks of at most ``block_size`` bytes of data.

    Blocks go out in windows of ``window`` blocks (the peer's receive window): every block but
    the last of a window carries the streaming bit, so the peer acknowledges once per window.
    ``receive_window`` is what we announce in block-control.
    """
    if block_size < 1:
        raise EncodeError(f"GBT block size {block_size} must be positive")
    if not 1 <= window <= _WINDOW or not 0 <= receive_window <= _WINDOW:
        raise EncodeError("GBT windows are 1-63 blocks")
    chunks = [apdu[i : i + block_size] for i in range(0, len(apdu), block_size)] or [b""]
    if first_block_number + len(chunks) - 1 > 0xFFFF:
        raise EncodeError(f"{len(chunks)} blocks overflow the 16-bit block number")
    blocks = []
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        end_of_window = (index + 1) % window == 0
        blocks.append(
            GeneralBlockTransfer(
                last_block=last,
                streaming=not last and not end_of_window,
                window=receive_window,
                block_number=first_block_number + index,
                block_number_ack=block_number_ack,
                block_data=bytes(chunk),
            )
        )
    return blocks


class GbtSender:
    """Sends one APDU as GBT blocks, a window at a time, and goes back to what the peer missed.

    Call ``next_window()`` for the blocks to send now; feed each acknowledgement block from the
    peer to ``receive_ack()``. The last block needs no acknowledgement: the peer's response
    (itself a GBT stream) acknowledges it.
    """

    def __init__(
        self,
        apdu: bytes,
        block_size: int,
        *,
        window: int = 1,
        receive_window: int = 1,
        first_block_number: int = 1,
        block_number_ack: int = 0,
    ) -> None:
        self._blocks = split_into_blocks(
            apdu,
            block_size,
            window=1,
            receive_window=receive_window,
            first_block_number=first_block_number,
            block_number_ack=block_number_ack,
        )
        self._first = first_block_number
        self.window = window
        self._next = 0  # index of the next block to send
        self._acked = 0  # number of blocks the peer has acknowledged

    @property
    def finished(self) -> bool:
        """Every block, the last included, has been sent at least once."""
        return self._next >= len(self._blocks)

    def next_window(self) -> list[GeneralBlockTransfer]:
        """The blocks to send now: up to ``window`` blocks after the last acknowledged one."""
        end = min(self._acked + self.window, len(self._blocks))
        out = []
        for index in range(self._next, end):
            block = self._blocks[index]
            streaming = index != end - 1 and not block.last_block
            out.append(
                GeneralBlockTransfer(
                    block.last_block,
                    streaming,
                    block.window,
                    block.block_number,
                    block.block_number_ack,
                    block.block_data,
                )
            )
        self._next = max(self._next, end)
        return out

    def receive_ack(self, ack: GeneralBlockTransfer) -> None:
        """Take the peer's acknowledgement: blocks after ``block_number_ack`` are sent again."""
        acked = ack.block_number_ack - self._first + 1
        if not self._acked <= acked <= self._next:
            raise StateError(
                f"GBT acknowledgement of block {ack.block_number_ack}, "
                f"only blocks up to {self._first + self._next - 1} were sent"
            )
        self._acked = acked
        self._next = acked  # anything not acknowledged goes again
        if ack.window:
            self.window = ack.window


class GbtReceiver:
    """Reassembles a GBT stream from the peer and says which acknowledgements to send.

    ``receive()`` returns the blocks the connection must send back (acknowledgements at the
    end of each window, or to ask again for blocks that went missing).
    """

    def __init__(self, window: int = 1, *, first_block_number: int = 1, own_block_number: int = 1) -> None:
        if not 1 <= window <= _WINDOW:
            raise EncodeError(f"GBT window {window} outside 1-63")
        self.window = window
        self._expected = first_block_number
        self._own = own_block_number
        self._parts: list[bytes] = []
        self.complete = False

    @property
    def last_received(self) -> int:
        """The block number of the last block received in sequence."""
        return self._expected - 1

    def apdu(self) -> bytes:
        if not self.complete:
            raise StateError("the GBT stream is not complete yet")
        return b"".join(self._parts)

    def receive(self, block: GeneralBlockTransfer) -> list[GeneralBlockTransfer]:
        if self.complete:
            raise StateError(f"GBT block {block.block_number} after the last block")
        if block.block_number == self._expected:
            self._parts.append(block.block_data)
            self._expected += 1
            if block.last_block:
                self.complete = True
                return []
        # A block out of sequence is dropped: the acknowledgement makes the peer send it again.
        if block.streaming and not block.last_block:
            return []
        return [self._ack()]

    def _ack(self) -> GeneralBlockTransfer:
        ack = GeneralBlockTransfer(
            last_block=True,
            streaming=False,
            window=self.window,
            block_number=self._own,
            block_number_ack=self.last_received,
            block_data=b"",
        )
        self._own += 1
        return ack
