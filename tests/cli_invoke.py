"""Run the ``churnrisk`` CLI in-process, as the tests do."""

from typing import Any

from churnrisk.cli import main


def invoke(args: list[Any]) -> int:
    """Run ``churnrisk ARGS`` (each argument str()-ed) and return its exit code."""
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
