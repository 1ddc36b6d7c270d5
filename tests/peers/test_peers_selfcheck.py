"""Self-check of the test-only peers: gurux-dlms and dlms-cosem must agree with each other where both work."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bench import codec_peers
from tests.peers import SUITE0, SecurityKeys
from tests.peers import dlms_cosem_peer as dc
from tests.peers import gurux_peer as gx

LOAD_PROFILE = bytes.fromhex("0100630100FF")
CLOCK = bytes.fromhex("0000010000FF")
DISCONNECT = bytes.fromhex("0000600300FF")
GURUX_CONFORMANCE = 0x401E5D  # what a default gurux LN client proposes
CHALLENGE = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
CET = timezone(timedelta(hours=1))


def test_unciphered_aarq_from_gurux_decodes_in_dlms_cosem() -> None:
    for mechanism, password in ((0, None), (1, b"12345678")):
        apdu = gx.aarq(mechanism=mechanism, password=password)
        ours = dc.decode_apdu(apdu)
        theirs = gx.decode_apdu(apdu)
        assert theirs["initiate_request"] == {
            "dlms_version": 6,
            "conformance": GURUX_CONFORMANCE,
            "max_pdu_size": 0xFFFF,
        }
        assert theirs["mechanism"] == (None if mechanism == 0 else 1)
        assert theirs["calling_authentication_value"] == password
        # dlms-cosem drops the first conformance octet when it decodes an InitiateRequest
        assert ours["initiate_request"]["conformance"] == GURUX_CONFORMANCE & 0xFFFF
        ours["initiate_request"]["conformance"] = GURUX_CONFORMANCE
        assert ours == theirs


def test_aarq_bytes_are_identical_in_both_peers() -> None:
    assert dc.aarq(conformance=GURUX_CONFORMANCE) == gx.aarq()
    assert dc.aarq(mechanism=1, password=b"12345678", conformance=GURUX_CONFORMANCE) == gx.aarq(
        mechanism=1, password=b"12345678"
    )


def test_hls_gmac_aarq_is_identical_and_deciphers_in_both() -> None:
    g = gx.aarq(mechanism=5, keys=SUITE0, invocation_counter=1, challenge=CHALLENGE)
    d = dc.aarq(
        mechanism=5, keys=SUITE0, invocation_counter=1, challenge=CHALLENGE, conformance=GURUX_CONFORMANCE
    )
    assert g == d
    decoded = gx.decode_apdu(g)
    assert decoded == dc.decode_apdu(g)
    assert decoded["ciphered"] is True
    assert decoded["calling_ap_title"] == SUITE0.system_title
    assert decoded["mechanism"] == 5
    assert decoded["calling_authentication_value"] == CHALLENGE
    glo = decoded["glo_initiate_request"]
    assert (glo["security_control"], glo["invocation_counter"]) == (0x30, 1)
    plain = dc.decipher(glo["ciphered_text"], SUITE0, 1)
    assert plain == bytes.fromhex("01000000065F1F0400401E5DFFFF")


@pytest.mark.parametrize(
    ("gurux_apdu", "dlms_cosem_apdu", "expected"),
    [
        (
            lambda: gx.get_request_normal(3, bytes.fromhex("0100010800FF"), 2),
            lambda: dc.get_request_normal(3, bytes.fromhex("0100010800FF"), 2),
            {
                "apdu": "get-request-normal",
                "invoke_id_and_priority": 0xC1,
                "class_id": 3,
                "obis": bytes.fromhex("0100010800FF"),
                "attribute": 2,
                "access_selector": None,
                "access_parameters": None,
            },
        ),
        (
            lambda: gx.get_request_next(7),
            lambda: dc.get_request_next(7),
            {"apdu": "get-request-next", "invoke_id_and_priority": 0xC1, "block_number": 7},
        ),
        (
            lambda: gx.set_request_normal(8, CLOCK, 2, (9, bytes.fromhex("07E80101010000000000C400"))),
            lambda: dc.set_request_normal(8, CLOCK, 2, (9, bytes.fromhex("07E80101010000000000C400"))),
            {
                "apdu": "set-request-normal",
                "invoke_id_and_priority": 0xC1,
                "class_id": 8,
                "obis": CLOCK,
                "attribute": 2,
                "value": bytes.fromhex("07E80101010000000000C400"),
            },
        ),
        (
            lambda: gx.action_request_normal(70, DISCONNECT, 1, (15, 0)),
            lambda: dc.action_request_normal(70, DISCONNECT, 1, (15, 0)),
            {
                "apdu": "action-request-normal",
                "invoke_id_and_priority": 0xC1,
                "class_id": 70,
                "obis": DISCONNECT,
                "method": 1,
                "parameter": 0,
            },
        ),
        (
            gx.rlrq,
            dc.rlrq,
            {"apdu": "rlrq", "reason": 0},
        ),
    ],
)
def test_client_requests_agree(gurux_apdu, dlms_cosem_apdu, expected) -> None:  # type: ignore[no-untyped-def]
    g, d = gurux_apdu(), dlms_cosem_apdu()
    assert g == d
    assert gx.decode_apdu(d) == expected
    assert dc.decode_apdu(g) == expected


def test_range_access_get_request_agrees() -> None:
    start, end = datetime(2024, 1, 1, tzinfo=CET), datetime(2024, 1, 2, tzinfo=CET)
    d = dc.get_request_normal(7, LOAD_PROFILE, 2, range_from=start, range_to=end)
    g = gx.get_request_normal(7, LOAD_PROFILE, 2, range_from=start, range_to=end)
    from_g, from_d = gx.decode_apdu(g), dc.decode_apdu(d)
    assert from_d == gx.decode_apdu(d) == dc.decode_apdu(g)
    assert from_d["access_selector"] == 1
    restricting, low, high, columns = from_d["access_parameters"]
    assert restricting == [8, CLOCK, 2, 0] and columns == []
    # dlms-cosem: day-of-week FF, deviation -60 (C4 FF->FFC4), status 00
    assert low == bytes.fromhex("07E80101FF00000000FFC400")
    assert high == bytes.fromhex("07E80102FF00000000FFC400")
    # gurux fills in the day of week and its own clock status, so only the date/time part agrees
    glow, ghigh = from_g["access_parameters"][1:3]
    assert from_g["access_parameters"][0] == [8, CLOCK, 2, 0]
    assert (glow[:4], glow[5:9], ghigh[:4], ghigh[5:9]) == (low[:4], low[5:9], high[:4], high[5:9])


PROFILE_ROW: tuple[int, list[tuple[int, object]]] = (
    2,
    [(9, bytes.fromhex("07E8010101000F0000FFC400")), (6, 1_250_180), (6, 310_020)],
)


@pytest.mark.parametrize(
    ("gurux_apdu", "expected"),
    [
        (
            lambda: gx.get_response_normal((1, [PROFILE_ROW])),
            {
                "apdu": "get-response-normal",
                "invoke_id_and_priority": 0xC1,
                "data": [[bytes.fromhex("07E8010101000F0000FFC400"), 1_250_180, 310_020]],
            },
        ),
        (
            lambda: gx.get_response_normal_error(4),
            {"apdu": "get-response-normal-error", "invoke_id_and_priority": 0xC1, "result": 4},
        ),
        (
            lambda: gx.get_response_with_block(b"\x01\x02\x03", 2, True),
            {
                "apdu": "get-response-with-datablock",
                "invoke_id_and_priority": 0xC1,
                "last_block": True,
                "block_number": 2,
                "raw_data": b"\x01\x02\x03",
            },
        ),
        (
            lambda: gx.set_response_normal(3),
            {"apdu": "set-response-normal", "invoke_id_and_priority": 0xC1, "result": 3},
        ),
        (
            lambda: gx.action_response_normal(0, (6, 42)),
            {"apdu": "action-response-normal", "invoke_id_and_priority": 0xC1, "result": 0, "data": 42},
        ),
        (
            lambda: gx.exception_response(1, 2),
            {"apdu": "exception-response", "state_error": 1, "service_error": 2},
        ),
        (
            lambda: gx.data_notification(0x80000001, (2, [(9, b"\x01\x02"), (18, 16)])),
            {
                "apdu": "data-notification",
                "long_invoke_id_and_priority": 0x80000001,
                "date_time": None,
                "body": [b"\x01\x02", 16],
            },
        ),
    ],
)
def test_server_apdus_from_gurux_decode_in_dlms_cosem(gurux_apdu, expected) -> None:  # type: ignore[no-untyped-def]
    apdu = gurux_apdu()
    assert gx.decode_apdu(apdu) == expected
    assert dc.decode_apdu(apdu) == expected


def test_server_apdus_encoded_by_both_are_identical() -> None:
    assert dc.get_response_normal_error(4) == gx.get_response_normal_error(4)
    assert dc.get_response_last_block(b"\xaa", 1) == gx.get_response_with_block(b"\xaa", 1, True)
    assert dc.get_response_with_block(b"\xaa", 1) == gx.get_response_with_block(b"\xaa", 1, False)
    assert dc.set_response_normal(0) == gx.set_response_normal(0) == bytes.fromhex("C501C100")
    assert dc.action_response_normal(0, (6, 42)) == gx.action_response_normal(0, (6, 42))
    assert dc.exception_response(1, 2) == gx.exception_response(1, 2) == bytes.fromhex("D80102")
    body = (2, [(9, b"\x01\x02"), (18, 16)])
    assert dc.data_notification(1, body) == gx.data_notification(1, body)
    assert dc.encode_data(PROFILE_ROW) == bytes.fromhex(
        "0203090C07E8010101000F0000FFC4000600131384060004BB04"
    )


def test_known_defects_stay_visible() -> None:
    # dlms-cosem cannot encode GetResponseNormal at all
    with pytest.raises(dc.PeerUnsupported):
        dc.get_response_normal(b"\x11\x05")
    # gurux's translator leaves out the return-parameters presence flag of an Action-Response-Normal
    # without data (C7 01 C1 00 instead of C7 01 C1 00 00)...
    assert gx.action_response_normal(0) == bytes.fromhex("C701C100")
    assert dc.action_response_normal(0) == bytes.fromhex("C701C10000")
    # ...and dlms-cosem leaks an IndexError on that short APDU instead of a decoding error
    with pytest.raises(IndexError):
        dc.decode_apdu(bytes.fromhex("C701C100"))
    # gurux's translator loses the negotiated conformance of an AARE
    assert gx.aare()[-9:] == bytes.fromhex("040000000001F40007")
    # dlms-cosem's APDU factory does not know glo-get-response (0xCC)
    from dlms_cosem.connection import XDlmsApduFactory

    with pytest.raises(KeyError):
        XDlmsApduFactory.apdu_from_bytes(bytes.fromhex("CC0530000000010000"))


def test_aare_agrees() -> None:
    apdu = dc.aare(conformance=0x00501F, max_pdu_size=500)
    expected = {
        "apdu": "aare",
        "ciphered": False,
        "result": 0,
        "diagnostic": 0,
        "responding_ap_title": None,
        "mechanism": None,
        "responding_authentication_value": None,
        "initiate_response": {"dlms_version": 6, "conformance": 0x00501F, "max_pdu_size": 500, "vaa_name": 7},
    }
    assert gx.decode_apdu(apdu) == expected
    assert dc.decode_apdu(apdu) == expected


def test_glo_get_request_from_gurux_deciphers_in_dlms_cosem() -> None:
    apdu = gx.glo_get_request(3, bytes.fromhex("0100010800FF"), 2, SUITE0, 5)
    assert apdu[0] == 0xC8
    plain = {
        "apdu": "get-request-normal",
        "invoke_id_and_priority": 0xC1,
        "class_id": 3,
        "obis": bytes.fromhex("0100010800FF"),
        "attribute": 2,
        "access_selector": None,
        "access_parameters": None,
    }
    for decoded in (dc.decode_apdu(apdu, SUITE0), gx.decode_apdu(apdu, SUITE0)):
        assert decoded["security_control"] == 0x30
        assert decoded["invocation_counter"] == 5
        assert decoded["plain"] == plain
    # the same plaintext ciphered by dlms-cosem's security module gives gurux's bytes
    assert dc.cipher(bytes.fromhex("C001C100030100010800FF0200"), SUITE0, 5) == apdu[7:]


def test_general_glo_ciphering_from_dlms_cosem_deciphers_in_gurux() -> None:
    plain_apdu = dc.get_request_normal(8, CLOCK, 2)
    apdu = dc.general_glo_ciphering(plain_apdu, SUITE0, 0x1234)
    decoded = gx.decode_apdu(apdu, SUITE0)
    assert decoded == dc.decode_apdu(apdu, SUITE0)
    assert decoded["system_title"] == SUITE0.system_title
    assert decoded["invocation_counter"] == 0x1234
    assert decoded["plain"]["class_id"] == 8 and decoded["plain"]["obis"] == CLOCK
    wrong = SecurityKeys(SUITE0.system_title, SUITE0.encryption_key, bytes(16))
    with pytest.raises(Exception):  # noqa: B017 - each peer has its own tag-failure exception
        dc.decode_apdu(apdu, wrong)


def test_hdlc_and_wrapper_frames_agree() -> None:
    assert gx.hdlc_snrm() == dc.hdlc_snrm() == bytes.fromhex("7EA0070321930F017E")
    assert gx.hdlc_disc() == dc.hdlc_disc() == bytes.fromhex("7EA00703215303C77E")
    assert gx.hdlc_aarq() == dc.hdlc_i_frame(b"\xe6\xe6\x00" + gx.aarq(), 0, 0)
    frame = gx.wrapper_aarq()
    assert dc.decode_wrapper(frame) == {
        "version": 1,
        "source_wport": 16,
        "destination_wport": 1,
        "apdu": gx.aarq(),
    }
    assert dc.wrapper(gx.aarq()) == frame


def test_data_decoders_agree() -> None:
    raw = bytes.fromhex("02050600000001030110FFFE0A02616200")
    assert gx.decode_data(raw) == dc.decode_data(raw) == [1, True, -2, "ab", None]


def test_benchmark_input_decodes_identically_in_both_peers() -> None:
    assert 2400 < len(codec_peers.PLAIN_APDU) < 2600
    assert codec_peers.CIPHERED_APDU[:2] == b"\xcc\x82"
    assert codec_peers.CIPHERED_APDU[4:9] == bytes.fromhex("3000000001")
    expected = [[moment.replace(tzinfo=CET), a, b] for moment, a, b in codec_peers.EXPECTED_ROWS]
    assert expected[0] == [datetime(2024, 1, 1, 0, 15, tzinfo=CET), 1_250_180, 310_020]
    for decode, apdu in (
        (codec_peers.dlms_cosem_decode_plain, codec_peers.PLAIN_APDU),
        (codec_peers.dlms_cosem_decode_ciphered, codec_peers.CIPHERED_APDU),
        (codec_peers.gurux_decode_plain, codec_peers.PLAIN_APDU),
        (codec_peers.gurux_decode_ciphered, codec_peers.CIPHERED_APDU),
    ):
        rows = decode(apdu)
        assert len(rows) == 96
        # compare instants and offsets: both peers read deviation -60 as UTC+01:00
        assert [[r[0], r[1], r[2]] for r in rows] == expected
        assert all(r[0].utcoffset() == timedelta(hours=1) for r in rows)


def test_measure_returns_a_positive_median() -> None:
    assert codec_peers.measure(codec_peers.dlms_cosem_decode_plain, codec_peers.PLAIN_APDU, repeat=3) > 0.0
