"""HDLC frames (IEC 62056-46) from public captures and independent implementations, with what they hold.

No frame here is copied from the Green Book itself (we hold no copy to cite page numbers from);
each source line says where the bytes come from. The test suite re-derives the gurux-dlms and
dlms-cosem ones live from those libraries, so a typo here fails.
"""

from __future__ import annotations

from protocols.hdlc.frame import FrameType, HdlcAddress, HdlcFrame, HdlcParameters

__all__ = ["HDLC_FRAMES", "MODE_E_MESSAGES", "UA_PARAMETERS"]

_CLIENT = HdlcAddress(16)
_SERVER_1 = HdlcAddress(1)
_SERVER_1_17 = HdlcAddress(1, 17, 2)

_DLMS_COSEM_TESTS = (
    "IEC 62056-46 frame; captured frame as reproduced in u9n/dlms-cosem tests/test_hdlc/test_hdlc.py"
)

#: (name, source, hex of the frame with both flags, expected frame)
HDLC_FRAMES: tuple[tuple[str, str, str, HdlcFrame], ...] = (
    (
        "snrm-no-parameters",
        "IEC 62056-46 6.4.4.4.3.2 (SNRM without information field: default parameters); bytes as "
        "emitted by gurux-dlms 1.0.203 GXDLMSClient(True, 16, 1).snrmRequest(), also in public "
        "meter captures",
        "7ea0070321930f017e",
        HdlcFrame(FrameType.SNRM, _SERVER_1, _CLIENT),
    ),
    (
        "snrm-two-byte-server-address",
        _DLMS_COSEM_TESTS + " (TestSnrmFrame)",
        "7ea00802232193bd647e",
        HdlcFrame(FrameType.SNRM, _SERVER_1_17, _CLIENT),
    ),
    (
        "ua-with-parameters",
        _DLMS_COSEM_TESTS + " (TestUAFrame: max info 154 both ways, window 1)",
        "7ea01f21022373e6c781801205019a06019a070400000001080400000001cca27e",
        HdlcFrame(FrameType.UA, _CLIENT, _SERVER_1_17,
                  bytes.fromhex("81801205019a06019a070400000001080400000001")),
    ),
    (
        "ua-gurux-server-group-length-0",
        "UA of the gurux-dlms 1.0.203 meter server (Python) to an SNRM without parameters, as its "
        "GXDLMSServer.handleSnrmRequest writes it: the group length is left 0 (its setUInt8(2, len - 3) "
        "writes the byte 2 into the last window value instead) and 18 bytes of parameters follow; the "
        "window size receive reads 0x00020001. Read leniently: max info 128 both ways, windows 1",
        "7ea01e210373c37a81800005018006018007040000000108040002000161dc7e",
        HdlcFrame(FrameType.UA, _CLIENT, _SERVER_1,
                  bytes.fromhex("818000050180060180070400000001080400020001")),
    ),
    (
        "ua-real-meter-gurux-c-issue-1",
        "UA of a meter (make not named) to an SNRM, quoted in https://github.com/Gurux/GuruxDLMS.c/issues/1 "
        "(2018-11-29): client 2, two-byte server address 1/16; max info 256 both ways, windows 1",
        "7ea0210502217380bc8180140502010006020100070400000001080400000001696d7e",
        HdlcFrame(FrameType.UA, HdlcAddress(2), HdlcAddress(1, 16, 2),
                  bytes.fromhex("8180140502010006020100070400000001080400000001")),
    ),
    (
        "ua-real-meter-mem600",
        "UA of a Mikroelektronika MEM600 over its optical port, logged by dlms-cosem in "
        "https://github.com/u9n/dlms-cosem/issues/95 (2024-03-21): four-byte server address 1/2836; "
        "max info 242 both ways, windows 1",
        "7ea0232100022c29731e9e818014050200f2060200f20704000000010804000000010cf77e",
        HdlcFrame(FrameType.UA, _CLIENT, HdlcAddress(1, 2836, 4),
                  bytes.fromhex("818014050200f2060200f2070400000001080400000001")),
    ),
    (
        "ua-odd-group-length-too-large",
        "hand-written (hes): the group length says 20 bytes but only the two maximum information "
        "lengths (8 bytes) follow; windows missing, so the IEC 62056-46 defaults (1) apply",
        "7ea0142103736da68180140502010006020100ed297e",
        HdlcFrame(FrameType.UA, _CLIENT, _SERVER_1, bytes.fromhex("8180140502010006020100")),
    ),
    (
        "ua-odd-order-unknown-widths",
        "hand-written (hes): parameters in reverse order, one-byte windows, an unknown parameter 09 "
        "in between; read: max info tx 128, rx 240, window tx 2, rx 3",
        "7ea01c210373b543818010080103070102090105060200f0050180643a7e",
        HdlcFrame(FrameType.UA, _CLIENT, _SERVER_1, bytes.fromhex("818010080103070102090105060200f0050180")),
    ),
    (
        "ua-odd-no-format-byte",
        "hand-written (hes): the format identifier 81 left out, the group 80 given; read as if it "
        "were there (max info 128 both ways, windows default)",
        "7ea0112103733ac88006050180060180f3897e",
        HdlcFrame(FrameType.UA, _CLIENT, _SERVER_1, bytes.fromhex("8006050180060180")),
    ),
    (
        "ua-odd-cut-parameter",
        "hand-written (hes): the group length says 9, 8 bytes follow and the second parameter claims "
        "4 bytes of which 2 are there; the first (max info tx 128) is kept, the rest default",
        "7ea0142103736da68180090502008006040000d49a7e",
        HdlcFrame(FrameType.UA, _CLIENT, _SERVER_1, bytes.fromhex("8180090502008006040000")),
    ),
    (
        "i-frame-aarq",
        _DLMS_COSEM_TESTS + " (TestInformationFrame: AARQ, N(S)=0 N(R)=0)",
        "7ea02c02232110af9fe6e600601da109060760857405080101be10040e01000000065f1f0400001e1dffffc5e47e",
        HdlcFrame(FrameType.I, _SERVER_1_17, _CLIENT, bytes.fromhex(
            "e6e600601da109060760857405080101be10040e01000000065f1f0400001e1dffff")),
    ),
    (
        "i-frame-aare",
        _DLMS_COSEM_TESTS + " (TestInformationResponseFrame: AARE, N(S)=0 N(R)=1)",
        "7ea0382102233034e7e6e7006129a109060760857405080101a203020100a305a103020100be10040e0800065f1f0400"
        "001e1d04c80007b86a7e",
        HdlcFrame(FrameType.I, _CLIENT, _SERVER_1_17, bytes.fromhex(
            "e6e7006129a109060760857405080101a203020100a305a103020100be10040e0800065f1f0400001e1d04c80007"),
            receive_sequence=1),
    ),
    (
        "i-frame-get-request-clock",
        "IEC 62056-46 I-frame carrying a GET-Request-Normal (clock 0.0.1.0.0.255 attribute 2), N(S)=1 "
        "N(R)=1; bytes as emitted by gurux-dlms 1.0.203 GXDLMSClient.read() after the association",
        "7ea0190321326fd8e6e600c001c100080000010000ff0200601a7e",
        HdlcFrame(FrameType.I, _SERVER_1, _CLIENT, bytes.fromhex("e6e600c001c100080000010000ff0200"),
                  send_sequence=1, receive_sequence=1),
    ),
    (
        "rr-nr1",
        "IEC 62056-46 RR with N(R)=1, P=1; bytes as emitted by dlms-cosem 25.1.0 "
        "hdlc.frames.ReceiveReadyFrame(server 1/17, client 16, receive_sequence_number=1)",
        "7ea00802232131a5e27e",
        HdlcFrame(FrameType.RR, _SERVER_1_17, _CLIENT, receive_sequence=1),
    ),
    (
        "disc",
        "IEC 62056-46 DISC; bytes as emitted by dlms-cosem 25.1.0 hdlc.frames.DisconnectFrame "
        "(server 1/17, client 16)",
        "7ea00802232153b1a27e",
        HdlcFrame(FrameType.DISC, _SERVER_1_17, _CLIENT),
    ),
    (
        "disc-one-byte-server-address",
        "IEC 62056-46 DISC; bytes as emitted by gurux-dlms 1.0.203 GXDLMSClient(True, 16, 1)"
        ".disconnectRequest()",
        "7ea00703215303c77e",
        HdlcFrame(FrameType.DISC, _SERVER_1, _CLIENT),
    ),
)

#: (name, source, hex, expected text) of IEC 62056-21 messages opening mode E.
MODE_E_MESSAGES: tuple[tuple[str, str, str, str], ...] = (
    (
        "sign-on",
        "IEC 62056-21:2002 6.3.1 request message '/?!CRLF'; same bytes in a public Gurux "
        "DataExchange log (2F3F210D0A)",
        "2f3f210d0a",
        "/?!\r\n",
    ),
    (
        "identification-mode-e",
        "IEC 62056-21:2002 6.3.2, enhanced identification character '2' (binary mode HDLC, per DLMS UA "
        "list of standard items); bytes as in a public Gurux DataExchange log (/VMQ5\\2 CRLF)",
        "2f564d51355c320d0a",
        "/VMQ5\\2\r\n",
    ),
    (
        "ack-mode-e-9600",
        "IEC 62056-21:2002 6.3.3 acknowledgement/option select 'ACK 2 5 2 CRLF' (V=2 HDLC, Z=5 9600 Bd, "
        "Y=2 binary mode); bytes as in a public Gurux DataExchange log (063235320D0A)",
        "063235320d0a",
        "\x06" "252\r\n",
    ),
)


#: What a client reads from each UA above, leniently: (frame name, the server's parameters as it sent
#: them, fragments of the notes in order; none when the group is sound).
UA_PARAMETERS: tuple[tuple[str, HdlcParameters, tuple[str, ...]], ...] = (
    ("ua-with-parameters", HdlcParameters(154, 154, 1, 1), ()),
    ("ua-gurux-server-group-length-0", HdlcParameters(128, 128, 1, 1),
     ("group length says 0 bytes but 18 follow", "window size receive 131073 is not a window")),
    ("ua-real-meter-gurux-c-issue-1", HdlcParameters(256, 256, 1, 1), ()),
    ("ua-real-meter-mem600", HdlcParameters(242, 242, 1, 1), ()),
    ("ua-odd-group-length-too-large", HdlcParameters(256, 256, 1, 1), ("group length says 20 bytes but 8 follow",)),
    ("ua-odd-order-unknown-widths", HdlcParameters(128, 240, 2, 3), ("unknown parameter 0x09",)),
    ("ua-odd-no-format-byte", HdlcParameters(128, 128, 1, 1), ("format identifier 81 is missing",)),
    ("ua-odd-cut-parameter", HdlcParameters(128, 128, 1, 1),
     ("group length says 9 bytes but 8 follow", "parameter 0x06 of length 4 at byte 7 is unreadable")),
)
