"""The project's images: every reference goes through `image_ref` (runtime, serving, ...).

Registry, repository and tag come from `runtime_image.json` beside this module (package
data, read from a file, never from the environment at import). The tag is immutable:
`<version>-<digest of the image's inputs>` (lock file, Dockerfile, project sources),
so a changed component never reuses an old tag. `python -m components.common.image_tag`
(`make image-tag`) recomputes it; a test fails when it is stale, and the compiled
pipeline pins exactly this reference.

A registry prefix (`seamless compile --image-prefix ghcr.io/acme/seamless`, the config's
`image_prefix`, or SEAMLESS_IMAGE_PREFIX) replaces the local `localhost/seamless` names;
when `make push` recorded the registry's digest for that exact tag
(build/images/digests.json), the reference is pinned to it: `<prefix>/<name>@sha256:...`.

    python -m components.common.image [--prefix P] [--digests]   # name + reference lines
    python -m components.common.image --record REF DIGEST      # after a push
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from components.common.durable import write_atomic
from components.common.errors import SeamlessError

IMAGE_FILE = Path(__file__).with_name("runtime_image.json")
IMAGE_NAMES = ("runtime", "serving", "mlflow", "feast", "spark")
PREFIX_ENV = "SEAMLESS_IMAGE_PREFIX"
"""Environment variable read by `seamless compile` (and the image scripts), never at import."""
DIGESTS_FILE = Path(__file__).resolve().parents[2] / "build" / "images" / "digests.json"
"""Registry digests of pushed references (`make push` writes it; not committed)."""

# Docker's reference grammar, restricted to lowercase: an optional host[:port], then
# slash-separated path components; no tag (`:` after the last slash) and no digest.
_HOST = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PREFIX = re.compile(rf"{_HOST}(?:/{_COMPONENT})*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def image_settings() -> dict[str, str]:
    settings: dict[str, str] = json.loads(IMAGE_FILE.read_text())
    return settings


def prefix_problem(prefix: str) -> str | None:
    """What is wrong with a registry prefix (a phrase), or None when it is usable."""
    if prefix != prefix.strip() or not prefix:
        return "is empty or has surrounding spaces"
    if "://" in prefix:
        return "has a URL scheme; write the registry host without it"
    if "@" in prefix:
        return "has a digest; digests are added per image from build/images/digests.json"
    if "/" in prefix and ":" in prefix.rsplit("/", 1)[-1]:
        return "has a tag; every image gets the project's own tag"
    if prefix != prefix.lower():
        return "has uppercase letters; image references are lowercase"
    if prefix.endswith("/"):
        return "ends with '/'"
    if not _PREFIX.fullmatch(prefix):
        return "is not a registry/repository path like ghcr.io/acme/seamless"
    return None


def check_prefix(prefix: str, where: str = "--image-prefix") -> str:
    """The prefix itself, or one sentence naming `where` and what is wrong with it."""
    why = prefix_problem(prefix)
    if why:
        raise SeamlessError(f"{where} '{prefix}' {why}.")
    return prefix


def load_digests(path: Path = DIGESTS_FILE) -> dict[str, str]:
    """Tagged reference -> registry digest (empty when nothing was pushed yet)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SeamlessError(
            f"{path} is not valid JSON ({exc.msg}); delete it and push again."
        ) from None
    if not isinstance(data, dict):
        raise SeamlessError(f"{path} is not a JSON object; delete it and push again.")
    for ref, digest in data.items():
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise SeamlessError(
                f"{path}: the digest of {ref} is not sha256:<64 hex>; delete the file and "
                "push again."
            )
    return data


def image_ref(
    name: str = "runtime", prefix: str | None = None, digests: dict[str, str] | None = None
) -> str:
    """`<registry>/<name>:<tag>` for one of the project's images (runtime, serving, ...).

    With `prefix`, `<prefix>/<name>:<tag>`, or `<prefix>/<name>@<digest>` when `digests`
    holds a digest for exactly that tagged reference. No prefix: the local names.
    """
    s = image_settings()
    repo = f"{check_prefix(prefix) if prefix else s['registry']}/{name}"
    tagged = f"{repo}:{s['tag']}"
    digest = (digests or {}).get(tagged) if prefix else None
    return f"{repo}@{digest}" if digest else tagged


def record_digest(ref: str, digest: str, path: Path = DIGESTS_FILE) -> None:
    """Remember the registry digest of a pushed tagged reference (merged into `path`)."""
    if not _DIGEST.fullmatch(digest):
        raise SeamlessError(f"'{digest}' (for {ref}) is not a sha256 digest.")
    data = load_digests(path)
    data[ref] = digest
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


RUNTIME_IMAGE = image_ref("runtime")


def seamless_component(func: Any) -> Any:
    """`dsl.component` in the runtime image, which already has kfp and the project.

    `install_kfp_package=False`: no pip install at run time (it fails in clusters
    without internet and would double the version pins).
    """
    from kfp import dsl

    return dsl.component(func, base_image=RUNTIME_IMAGE, install_kfp_package=False)


def main(argv: list[str] | None = None) -> None:
    """For the shell scripts: print `name reference` lines, or record a pushed digest."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="", help="registry prefix (default: local names)")
    parser.add_argument(
        "--digests", action="store_true", help="pin to recorded digests where known"
    )
    parser.add_argument("--record", nargs=2, metavar=("REF", "DIGEST"))
    parser.add_argument("--digests-file", type=Path, default=DIGESTS_FILE)
    args = parser.parse_args(argv)
    try:
        if args.record:
            ref, digest = args.record
            record_digest(ref, digest, args.digests_file)
            return
        prefix = check_prefix(args.prefix, "REGISTRY") if args.prefix else None
        digests = load_digests(args.digests_file) if args.digests else None
        print("tag", image_settings()["tag"])
        for name in IMAGE_NAMES:
            print(name, image_ref(name, prefix, digests))
    except SeamlessError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
