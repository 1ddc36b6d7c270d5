"""The head-end's settings, read from the environment once, with defaults for the embedded set-up.

| variable | default | meaning |
|---|---|---|
| ``HES_DATABASE_URL`` | ``sqlite:///hes.db`` (``./hes.db`` in the working folder) | the HES database |
| ``HES_LEGACY_DATABASE_URL`` | ``sqlite:///hes-legacy.db`` | the legacy integration database (CIM) |
| ``HES_DATA_DIR`` | ``./hes-data`` | where generated files live (the master key) |
| ``HES_MASTER_KEY_FILE`` | ``$HES_DATA_DIR/master.key`` | master key for keys at rest (made on first use, mode 600) |
| ``HES_MQTT_URL`` | unset: no event bus | e.g. ``mqtt://127.0.0.1:1883`` |

The databases stay beside the working folder (``./hes.db`` as README and DESIGN say) so a first
``hes demo`` needs nothing set; only generated secrets go to the data folder. ``postgresql://``
URLs are given the psycopg (3) driver, the one installed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from protocols.errors import DlmsError

__all__ = [
    "ConfigError",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_DATA_DIR",
    "DEFAULT_LEGACY_DATABASE_URL",
    "MASTER_KEY_NAME",
    "Settings",
    "load_settings",
    "normalise_database_url",
    "redact_url",
]

DEFAULT_DATABASE_URL = "sqlite:///hes.db"
DEFAULT_LEGACY_DATABASE_URL = "sqlite:///hes-legacy.db"
DEFAULT_DATA_DIR = "hes-data"
MASTER_KEY_NAME = "master.key"


class ConfigError(DlmsError):
    """A setting that cannot be used (bad URL, unusable path); fixing the environment is needed, not a retry."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the head-end keeps its state and how it reaches its services."""

    database_url: str = DEFAULT_DATABASE_URL
    legacy_database_url: str = DEFAULT_LEGACY_DATABASE_URL
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    master_key_file: Path = Path(DEFAULT_DATA_DIR) / MASTER_KEY_NAME
    mqtt_url: str | None = None


def normalise_database_url(url: str, variable: str = "HES_DATABASE_URL") -> str:
    """``url`` with the installed driver made explicit; ``ConfigError`` when it is not SQLite or PostgreSQL."""
    url = url.strip()
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if scheme in ("sqlite", "postgresql+psycopg", "sqlite+pysqlite"):
        return url
    raise ConfigError(f"{variable}={redact_url(url)!s}: expected sqlite:///FILE or postgresql://USER@HOST/DB")


def redact_url(url: str) -> str:
    """The URL without its password, fit for a log line or an error message."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``environ`` (default ``os.environ``); ``ConfigError`` names the bad variable."""
    env = os.environ if environ is None else environ

    def text(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    data_dir = Path(text("HES_DATA_DIR") or DEFAULT_DATA_DIR)
    key_file = Path(text("HES_MASTER_KEY_FILE") or data_dir / MASTER_KEY_NAME)
    mqtt = text("HES_MQTT_URL")
    if mqtt is not None and not mqtt.startswith(("mqtt://", "mqtts://")):
        raise ConfigError(f"HES_MQTT_URL={redact_url(mqtt)}: expected mqtt://HOST[:PORT]")
    return Settings(
        database_url=normalise_database_url(text("HES_DATABASE_URL") or DEFAULT_DATABASE_URL),
        legacy_database_url=normalise_database_url(
            text("HES_LEGACY_DATABASE_URL") or DEFAULT_LEGACY_DATABASE_URL, "HES_LEGACY_DATABASE_URL"
        ),
        data_dir=data_dir,
        master_key_file=key_file,
        mqtt_url=mqtt,
    )
