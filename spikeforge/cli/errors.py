"""The command line's error types and exit codes, shared by every subcommand."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input detected by a subcommand: printed as one line, exit status 2."""
