"""The one place that picks a TOML parser: the standard library's ``tomllib`` (Python 3.11+), or
``tomli`` on older Pythons (RHEL 9 ships 3.9). Both have the same API and the same error messages."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from tomllib import TOMLDecodeError, load, loads  # novermin (3.11+ branch)
else:
    from tomli import TOMLDecodeError, load, loads

__all__ = ["TOMLDecodeError", "load", "loads"]
