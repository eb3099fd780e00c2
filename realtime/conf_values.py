"""Settings' values from text and from Django settings, with one parsing for both.

``parse_text`` reads an environment variable (or a ``.env`` line) as a type,
``coerce`` checks a value a project set in its Django settings; ``realtime.conf``
uses both for the real-time settings. ``env`` reads a project's own settings
from the environment with the same parsing (Dexter's settings.py uses it); a
bad value there is recorded for the system check ``realtime.E001`` and the
default is used meanwhile, so the check can say so in one line instead of a
traceback at import.
"""

from __future__ import annotations

import builtins
import math
import os
from typing import Any

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def parse_text(kind: type, text: str) -> Any:
    """Parse the text of an environment variable as ``kind``; raises ValueError(why)."""
    text = text.strip()
    if kind is bool:
        word = text.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError("is not a boolean (true/false, 1/0, yes/no, on/off)")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("is not an integer") from None
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError("is not a number") from None
        if not math.isfinite(number):
            raise ValueError("is not a finite number")
        return number
    if kind is list:
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def coerce(kind: type, value: Any) -> Any:
    """A value of ``kind`` from a Django setting (or parsed text); raises ValueError(why)."""
    if isinstance(value, str) and kind is not str:
        return parse_text(kind, value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError("is not a boolean")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("is not an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("is not a number")
        return float(value)
    if kind is list:
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise ValueError("is not a list of strings")
        return list(value)
    if not isinstance(value, str):
        raise ValueError("is not a string")
    return value


class EnvReader:
    """Read a project's settings from the environment with the parsing of ``get``.

    ``env.int("DATABASE_CONN_MAX_AGE", 60)``: the default when unset or empty;
    when bad, the default too, and the bad value is kept for the system check.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def _read(self, kind: type, name: builtins.str, default: Any, positive: builtins.bool = False) -> Any:
        text = os.environ.get(name)
        if text is None or text.strip() == "":
            return default
        try:
            value = parse_text(kind, text)
            if positive and value <= 0:
                raise ValueError("must be greater than 0")
        except ValueError as exc:
            line = f"{name}={text!r} (from the environment) {exc}"
            if line not in self.problems:
                self.problems.append(line)
            return default
        return value

    # Named after the types they read (``env.int``), so the types are spelled builtins.* here.
    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        return self._read(builtins.bool, name, default)

    def int(self, name: builtins.str, default: builtins.int, *, positive: builtins.bool = False) -> builtins.int:
        return self._read(builtins.int, name, default, positive)

    def float(self, name: builtins.str, default: builtins.float, *, positive: builtins.bool = False) -> builtins.float:
        return self._read(builtins.float, name, default, positive)

    def list(self, name: builtins.str, default: builtins.list[builtins.str]) -> builtins.list[builtins.str]:
        return self._read(builtins.list, name, default)

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str | None:
        return self._read(builtins.str, name, default)


env = EnvReader()
