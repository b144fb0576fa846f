"""Byte sizes written the way people write them: ``1048576``, ``512MiB``, ``1 GiB``, ``10MB``."""

from __future__ import annotations

import re

_SIZE = re.compile(r"\s*([0-9]+)\s*([KMGT]i?B|B)?\s*", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_byte_size(value: int | str) -> int:
    """A positive number of bytes from an integer or a string with an optional unit.

    Units: ``B``, decimal ``KB``/``MB``/``GB``/``TB`` and binary ``KiB``/``MiB``/``GiB``/``TiB``
    (case-insensitive).

    Raises:
        ValueError: not a positive whole number of bytes.
    """
    if type(value) is int:
        number = value
    elif isinstance(value, str) and (m := _SIZE.fullmatch(value)):
        number = int(m.group(1)) * _UNITS[(m.group(2) or "b").lower()]
    else:
        raise ValueError(f"{value!r} is not a byte size (e.g. 1073741824, 512MiB, 1GiB)")
    if number < 1:
        raise ValueError(f"{value!r} must be at least one byte")
    return number
