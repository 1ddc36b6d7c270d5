"""Invocation counters of simulated meters, kept per (meter serial, client SAP) so they survive restarts.

A real meter keeps two numbers per security context in non-volatile memory: the next invocation
counter it will use itself, and the last one it accepted from the client (the replay check).
``CounterStore`` is that memory; ``MemoryCounterStore`` lives as long as the process,
``FileCounterStore`` is a JSON file written atomically (temporary file, then ``os.replace``).

The meter reserves its own counters in blocks (``SimulatedMeter`` stores "next = used + block"
ahead of use), as real meters do to spare their flash: after a crash it skips the unused rest of
a block but never reuses a value. The client's counter is stored after every accepted request.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["CounterError", "CounterStore", "Counters", "FileCounterStore", "MemoryCounterStore"]


class CounterError(Exception):
    """The counter file cannot be read or written (one line says which and why)."""


@dataclass(frozen=True, slots=True)
class Counters:
    """``server_next``: lowest invocation counter the meter may still use; ``client_last``: the
    last counter accepted from the client (None: none yet, any value is accepted once)."""

    server_next: int = 1
    client_last: int | None = None


class CounterStore(Protocol):
    """Where a meter keeps its invocation counters between sessions and restarts."""

    def get(self, serial: str, client_sap: int) -> Counters:
        """The stored counters, or fresh ``Counters()`` for a pair never seen."""
        ...

    def put(self, serial: str, client_sap: int, counters: Counters) -> None:
        """Store the counters (durably, for a file store, before returning)."""
        ...


class MemoryCounterStore:
    """Counters in a dict: survive a new ``SimulatedMeter`` in the same process, not the process."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[tuple[str, int], Counters] = {}

    def get(self, serial: str, client_sap: int) -> Counters:
        return self._data.get((serial, client_sap), Counters())

    def put(self, serial: str, client_sap: int, counters: Counters) -> None:
        self._data[(serial, client_sap)] = counters

    def __len__(self) -> int:
        return len(self._data)


def _key(serial: str, client_sap: int) -> str:
    return f"{serial}/{client_sap}"


class FileCounterStore:
    """Counters in a JSON file ``{"SERIAL/SAP": [server_next, client_last|null], ...}``.

    With ``autosave`` (the default) every ``put`` rewrites the file atomically, so a crash never
    loses an accepted client counter. A large fleet can pass ``autosave=False`` and call
    ``flush()`` itself (e.g. every few seconds and at shutdown), trading that guarantee for speed.
    """

    __slots__ = ("_autosave", "_data", "_dirty", "_path")

    def __init__(self, path: str | os.PathLike[str], *, autosave: bool = True) -> None:
        self._path = Path(path)
        self._autosave = autosave
        self._dirty = False
        self._data: dict[str, Counters] = self._load()

    @property
    def path(self) -> Path:
        return self._path

    def _load(self) -> dict[str, Counters]:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CounterError(f"cannot read counter file {self._path}: {exc.strerror or exc}") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CounterError(f"counter file {self._path} is not JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(raw, dict):
            raise CounterError(f"counter file {self._path}: expected a JSON object")
        data: dict[str, Counters] = {}
        for key, value in raw.items():
            if (
                not isinstance(value, list)
                or len(value) != 2
                or not _is_counter(value[0])
                or not (value[1] is None or _is_counter(value[1]))
            ):
                raise CounterError(f"counter file {self._path}: bad entry {key!r}")
            data[key] = Counters(value[0], value[1])
        return data

    def get(self, serial: str, client_sap: int) -> Counters:
        return self._data.get(_key(serial, client_sap), Counters())

    def put(self, serial: str, client_sap: int, counters: Counters) -> None:
        self._data[_key(serial, client_sap)] = counters
        self._dirty = True
        if self._autosave:
            self.flush()

    def flush(self) -> None:
        """Write the file if anything changed: a temporary file in the same folder, then a rename."""
        if not self._dirty:
            return
        payload = {key: [c.server_next, c.client_last] for key, c in sorted(self._data.items())}
        folder = self._path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=f".{self._path.name}.", suffix=".tmp", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(payload, handle, separators=(",", ":"))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self._path)
            except BaseException:
                # Leave no half-written temporary behind; the old file is still intact.
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise CounterError(f"cannot write counter file {self._path}: {exc.strerror or exc}") from None
        self._dirty = False


def _is_counter(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0x1_0000_0000
