"""Keep API keys out of the logs.

The service reads keys from headers only, and uvicorn's access log prints the method,
path and query string, never headers. A client may still put a key in a URL by
mistake (``?key=crk_...``), so :class:`RedactKeys` masks anything shaped like a key in
the records of the loggers the service writes to: ``crk_<key id>_<secret>`` becomes
``crk_<key id>_[redacted]`` (the key id is public: it is how operators name a key).
"""

from __future__ import annotations

import logging
import re
from typing import Any

KEY_PATTERN = re.compile(r"(crk_[0-9A-Za-z]{1,64}_)[A-Za-z0-9_\-%]+")
"""Text shaped like an API key, split into the public part and the secret."""

LOGGERS = ("uvicorn.access", "uvicorn.error", "churnrisk.api")
"""The loggers :func:`install` filters."""


def redact(text: str) -> str:
    """Return ``text`` with every key's secret replaced by ``[redacted]``."""
    return KEY_PATTERN.sub(r"\1[redacted]", text)


def _clean(value: Any) -> Any:
    return redact(value) if isinstance(value, str) and "crk_" in value else value


class RedactKeys(logging.Filter):
    """A logging filter that masks API keys in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask keys in ``record`` in place; never drops it."""
        record.msg = _clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _clean(v) for k, v in record.args.items()}
        return True


def install() -> RedactKeys:
    """Attach one :class:`RedactKeys` to the service's loggers; return it for removal."""
    flt = RedactKeys()
    for name in LOGGERS:
        logging.getLogger(name).addFilter(flt)
    return flt


def uninstall(flt: RedactKeys) -> None:
    """Detach a filter :func:`install` attached."""
    for name in LOGGERS:
        logging.getLogger(name).removeFilter(flt)
