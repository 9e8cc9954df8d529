"""Headless Chromium (Debian's `chromium`) for the browser tests: the binary, one run with
a throwaway profile, the artifacts folder for screenshots, and a parser of the DOM it dumps."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from tests.helpers.require import unavailable

REPO = Path(__file__).resolve().parents[2]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
VOID_TAGS = ("meta", "link", "input", "br", "hr", "img")


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("Chromium is missing: apt-get install chromium (Debian's package)")


def artifacts_dir() -> Path:
    """Where screenshots are kept: `$SEAMLESS_TEST_ARTIFACTS`, default tests/artifacts/."""
    folder = Path(os.environ.get("SEAMLESS_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run(profile_dir: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run with its own profile (and HOME) in `profile_dir`."""
    proc = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile_dir}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HOME": str(profile_dir)},
        check=False,
    )
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


class Dom(HTMLParser):
    """The elements of a dumped DOM in document order, with their attributes and text."""

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.texts: dict[int, list[str]] = {}
        self.text: list[str] = []
        self._open: list[int] = []
        if text:
            self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID_TAGS:
            self._open.append(len(self.elements) - 1)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self.elements[self._open.pop()][0] == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for i in self._open:
            self.texts.setdefault(i, []).append(data)

    def find(self, tag: str, css: str | None = None) -> list[int]:
        return [
            i
            for i, (t, a) in enumerate(self.elements)
            if t == tag and (css is None or css in (a.get("class") or "").split())
        ]

    def text_of(self, i: int) -> str:
        return "".join(self.texts.get(i, []))
