"""Values crossing the wire between the remote client and the server's native routes.

The library's services return frozen dataclasses (``Dataset``, ``Version``, ``Job`` ...). They
are sent tagged with their class name and rebuilt as the very same classes on the other side,
so code using :func:`datakeep.connect` cannot tell a remote client from an embedded one. Only
classes registered here can be rebuilt: a server cannot make the client construct anything else.
"""

from __future__ import annotations

import dataclasses
import importlib
from datetime import datetime
from pathlib import PurePath
from typing import Any

from datakeep.errors import RemoteError

_TYPE = "__type__"
_DT = "__dt__"

#: Modules whose dataclasses may cross the wire (imported lazily: jobs pull in the runner).
_MODULES = (
    "datakeep.domain.models",
    "datakeep.services.jobs",
    "datakeep.services.experiments",
    "datakeep.experiments.volumes",
)
_registry: dict[str, type[Any]] = {}


def _classes() -> dict[str, type[Any]]:
    if not _registry:
        for name in _MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and dataclasses.is_dataclass(value)
                    and value.__module__ == module.__name__
                ):
                    _registry.setdefault(value.__name__, value)
    return _registry


def encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DT: value.isoformat()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        body = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        body[_TYPE] = type(value).__name__
        return body
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "__iter__"):
        return [encode(v) for v in value]
    raise TypeError(f"cannot send a {type(value).__name__} over the wire")


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if _DT in value and len(value) == 1:
        return datetime.fromisoformat(value[_DT])
    if _TYPE in value:
        name = value[_TYPE]
        cls = _classes().get(name)
        if cls is None:
            raise RemoteError(f"The server sent an unknown kind of value: {name}", hint="Upgrade datakeep")
        fields = {k: decode(v) for k, v in value.items() if k != _TYPE}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in fields.items() if k in known})
    return {k: decode(v) for k, v in value.items()}
