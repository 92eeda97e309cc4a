"""The Makefile's demo target as `make` reads it (dry runs: nothing is installed or run)."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def dry_run(*args: str) -> str:
    """What ``make ARGS`` would run in the checkout, as ``make -n`` prints it."""
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_make_demo_passes_the_port_on() -> None:
    commands = [line for line in dry_run("demo", "PORT=8010").splitlines() if " demo " in line]
    assert commands == [
        f"CHURNRISK_DATA_DIR={ROOT}/demo-output .venv/bin/churnrisk demo"
        f" --out {ROOT}/demo-output --port 8010"
    ]


@pytest.mark.parametrize(("target", "installs"), [("demo", False), ("test", True), ("bench", True)])
def test_readme_says_which_targets_install_the_debian_packages(target: str, installs: bool) -> None:
    # on a machine without them (SYSDEPS names a missing file), does the target run apt-get?
    assert ("apt-get install" in dry_run(target, "SYSDEPS=/nonexistent/chromium")) is installs
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sentence = next(s for s in re.split(r"(?<=\.)\s", readme) if "with `apt-get`" in s)
    assert (f"`make {target}`" in sentence) is installs
