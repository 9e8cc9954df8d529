#!/usr/bin/env python3
"""Set the project images' tag in the overlays to the one in runtime_image.json.

    python manifests/tools/set_image_tag.py           # rewrite the overlays
    python manifests/tools/set_image_tag.py --check   # exit 1 if an overlay is stale

Rewrites only the `newTag:` lines of `images:` entries whose `name:` is one of the
project's images (`<registry>/<name>` from components/common/runtime_image.json), keeping
comments and layout. `make compile` runs it after recomputing the tag.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE_FILE = ROOT / "components" / "common" / "runtime_image.json"
OVERLAYS = ROOT / "manifests" / "overlays"
ENTRY = re.compile(
    r"(?P<head>-\s+name:\s*(?P<name>\S+)\s*\n(?:\s+newName:\s*\S+\s*\n)?\s+newTag:\s*)(?P<tag>\S+)"
)


def retag(text: str, registry: str, tag: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group("name").startswith(registry + "/"):
            return m.group("head") + tag
        return m.group(0)

    return ENTRY.sub(sub, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    settings = json.loads(IMAGE_FILE.read_text())
    stale = []
    for path in sorted(OVERLAYS.glob("*/kustomization.yaml")):
        text = path.read_text()
        new = retag(text, settings["registry"], settings["tag"])
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(
            f"stale image tag (want {settings['tag']}) in: {', '.join(map(str, stale))}",
            file=sys.stderr,
        )
        raise SystemExit(1)
    verb = "would update" if args.check else "updated"
    print(f"image tag {settings['tag']}: {verb} {len(stale)} overlay(s)")


if __name__ == "__main__":
    main()
