"""Crash injection for the atomic-write tests: count the ``os`` calls a write makes, fail one."""

from __future__ import annotations

import os

import pytest

FAULTY_CALLS = ("write", "fsync", "replace")


class InjectedFailure(OSError):
    """An injected failure of one ``os.write``, ``os.fsync`` or ``os.replace``."""


def fail_os_call(monkeypatch: pytest.MonkeyPatch, fail_at: int | None) -> list[str]:
    """Wrap ``os.write``, ``os.fsync`` and ``os.replace``: the returned list records each call's
    name, and call number ``fail_at`` (0-based; ``None``: none) raises ``InjectedFailure``."""
    calls: list[str] = []
    for name in FAULTY_CALLS:
        real = getattr(os, name)

        def wrapper(*args, _real=real, _name=name):
            calls.append(_name)
            if len(calls) - 1 == fail_at:
                raise InjectedFailure(f"injected failure in os.{_name}")
            return _real(*args)

        monkeypatch.setattr(os, name, wrapper)
    return calls
