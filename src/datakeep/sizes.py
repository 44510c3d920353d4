"""Byte sizes as people write them: ``5Gi``, ``10G``, ``512Mi``, ``1500``."""

from __future__ import annotations

import re

from datakeep.errors import InvalidInput

_UNITS = {
    "": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?\s*$")


def parse_size(text: str) -> int:
    """Parse SI (K, M, G, T) and binary (Ki, Mi, Gi, Ti) sizes, as Kubernetes and Gradient do."""
    match = _SIZE.match(text)
    if not match:
        raise InvalidInput(
            f"Invalid size {text!r}",
            hint="Use a number with an optional unit: K, M, G, T (powers of 10) or Ki, Mi, Gi, Ti (powers of 2)",
        )
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit or ""])


def format_size(size: int) -> str:
    """Human-readable binary size, for tables and progress output."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
