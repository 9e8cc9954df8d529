"""Compute the runtime image tag from the image's inputs; `--write` updates the config.

The digest covers what goes into the image: the lock file, the Dockerfiles, pyproject
and every source file of the two packages (the compiled specs excluded, since they
embed the tag themselves).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from components.common.image import IMAGE_FILE, image_settings

ROOT = Path(__file__).resolve().parents[2]


def _tracked(root: Path) -> list[Path] | None:
    """Files git tracks under the image's input folders (None outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", "pyproject.toml", "docker", "components", "pipelines"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [root / p for p in out.decode().split("\0") if p]


def image_inputs(root: Path = ROOT) -> list[Path]:
    """What goes into the image; in a checkout only tracked files count, so a scratch
    file in the work tree does not change the tag."""
    tracked = _tracked(root)
    if tracked is not None:
        skip = {IMAGE_FILE.resolve()}
        return sorted(
            f
            for f in tracked
            if f.is_file() and f.resolve() not in skip and "compiled" not in f.parts
        )
    files = [root / "pyproject.toml", *sorted((root / "docker").rglob("*"))]
    for package in ("components", "pipelines"):
        for path in sorted((root / package).rglob("*")):
            if path.suffix in (".py", ".yaml", ".json", ".md") and "compiled" not in path.parts:
                files.append(path)
    skip = {IMAGE_FILE.resolve()}
    # Dot folders (caches, local wheelhouses) and bytecode are not image inputs.
    return [
        f
        for f in files
        if f.is_file()
        and f.resolve() not in skip
        and not any(p.startswith(".") or p == "__pycache__" for p in f.relative_to(root).parts)
    ]


def compute_tag(root: Path = ROOT) -> str:
    """`<version>-<12 hex digits of the inputs' digest>`."""
    h = hashlib.sha256()
    for path in image_inputs(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    version = image_settings()["version"]
    return f"{version}-{h.hexdigest()[:12]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update runtime_image.json")
    parser.add_argument("--check", action="store_true", help="exit 1 when the tag is stale")
    args = parser.parse_args()
    tag = compute_tag()
    settings = image_settings()
    if args.write and settings["tag"] != tag:
        settings["tag"] = tag
        IMAGE_FILE.write_text(json.dumps(settings, indent=2) + "\n")
    elif args.check and settings["tag"] != tag:
        sys.exit(
            f"runtime image tag {settings['tag']} is stale (inputs say {tag}): run make compile"
        )
    print(tag)


if __name__ == "__main__":
    main()
