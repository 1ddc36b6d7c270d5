"""``hes dlms``: tools for protocol engineers (the translator)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from hes.errors import FAILURES
from protocols.translate import TranslatorKeys, translate

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
    data: Annotated[str, typer.Argument(help="Hex of a wrapper PDU, an HDLC frame or a bare APDU; - reads stdin.")],
    key: Annotated[str | None, typer.Option("--key", help="Encryption key (hex) to decipher with.")] = None,
    auth_key: Annotated[str | None, typer.Option("--auth-key", help="Authentication key (hex).")] = None,
    system_title: Annotated[
        str | None, typer.Option("--system-title", help="The sender's system title (hex, 8 bytes).")
    ] = None,
) -> None:
    """Decode a frame or APDU and print its structure as JSON: layers, APDU, invoke id, typed data."""
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
        result = translate(raw, keys)
    except typer.BadParameter as exc:
        _fail(str(exc))
        return
    except FAILURES as exc:
        _fail(str(exc))
        return
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
