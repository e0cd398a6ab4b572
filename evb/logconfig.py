"""structlog set-up and ``log_event``: the log vocabulary is the event vocabulary.

``configure("auto")`` renders for humans on a TTY and as JSON lines otherwise. ``log_event``
logs a core event under ``<layer>.<snake_case class name>`` (``VsiAssociated`` from
``evb/vdp/events.py`` → ``vdp.vsi_associated``) with its fields made readable (MACs, VSIIDs).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import sys
from typing import Any

import structlog

from evb.ethernet import mac_to_str
from evb.vdp.wire import format_manager_id, format_vsiid

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def configure(fmt: str = "auto", level: str = "info", stream: Any = None) -> None:
    """``fmt``: ``auto`` (console on a TTY, else JSON), ``console`` or ``json``."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def event_name(ev: object) -> str:
    module = type(ev).__module__.split(".")
    layer = module[1] if len(module) > 2 else module[-1]
    if layer == "events":
        layer = "port"
    return f"{layer}.{_CAMEL.sub('_', type(ev).__name__).lower()}"


def readable(name: str, value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, bytes):
        return mac_to_str(value) if len(value) == 6 else value.hex()
    if name == "key" and isinstance(value, tuple) and len(value) == 3:
        return f"{format_manager_id(value[0])}/{format_vsiid(value[1], value[2])}"
    if name == "msap" and isinstance(value, tuple) and len(value) == 4:
        return f"{value[1].hex(':')}/{value[3].hex(':')}"
    if isinstance(value, tuple):
        return [readable("", v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: readable(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def event_fields(ev: object) -> dict[str, Any]:
    if not dataclasses.is_dataclass(ev):
        return {}
    out = {}
    for f in dataclasses.fields(ev):
        if f.name in ("local", "peer"):
            continue  # whole EVB TLVs: too long for a log line
        value = getattr(ev, f.name)
        if f.name == "key":
            out["vsiid"] = readable("key", value)
        else:
            out[f.name] = readable(f.name, value)
    return out


def log_event(log: Any, ev: object, level: str = "info") -> None:
    getattr(log, level)(event_name(ev), **event_fields(ev))
