"""``hes dlms``: tools for protocol engineers (the translator)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from hes.errors import FAILURES
from protocols.translate import TranslatorKeys, translate, translate_data

__all__ = ["app"]

app = typer.Typer(help="DLMS/COSEM tools for engineers.", no_args_is_help=True)


def _hex_argument(text: str, what: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise typer.BadParameter(f"{what} is not hexadecimal") from None


def _fail(message: str) -> None:
    typer.echo(f"hes dlms decode: {message}", err=True)
    raise typer.Exit(2)


@app.command("decode")
def decode(
    data: Annotated[str, typer.Argument(
        help="Hex of HDLC frames, a wrapper PDU, M-Bus frames, a HAN LLC + APDU or a bare APDU; - reads stdin.")],
    key: Annotated[str | None, typer.Option("--key", help="Encryption key (hex) to decipher with.")] = None,
    auth_key: Annotated[str | None, typer.Option("--auth-key", help="Authentication key (hex).")] = None,
    system_title: Annotated[
        str | None, typer.Option("--system-title", help="The sender's system title (hex, 8 bytes).")
    ] = None,
    bare_data: Annotated[
        bool, typer.Option("--data", help="The input is bare A-XDR data (a value, no APDU around it).")
    ] = False,
) -> None:
    """Decode frames or an APDU and print its structure as JSON: framing, layers, APDU, typed data.

    Anything that does not decode exits 2 with one line on stderr: the error's type, what failed
    and the offset where known.
    """
    text = sys.stdin.read() if data == "-" else data
    try:
        raw = _hex_argument(text, "the input")
        keys = None
        if key is not None:
            keys = TranslatorKeys(
                encryption_key=_hex_argument(key, "--key"),
                authentication_key=_hex_argument(auth_key, "--auth-key") if auth_key else b"",
                system_title=_hex_argument(system_title, "--system-title") if system_title else None,
            )
        elif auth_key is not None or system_title is not None:
            _fail("--auth-key and --system-title go with --key")
        if bare_data and keys is not None:
            _fail("--data takes no keys: bare data is never ciphered")
        result = translate_data(raw) if bare_data else translate(raw, keys)
    except typer.BadParameter as exc:
        _fail(str(exc))
        return
    except FAILURES as exc:
        # One line whatever the message holds: the type says which kind of failure it was.
        _fail(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        return
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
