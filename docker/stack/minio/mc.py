#!/usr/bin/python3
"""`mc [--config-dir DIR] mb [--ignore-existing|-p] ALIAS/BUCKET...` over boto3.

The stand-in for the MinIO client's `mb` command only (what the minio-buckets Job runs):
the alias comes from MC_HOST_<ALIAS>=http(s)://KEY:SECRET@HOST:PORT, as with mc.
Any other command or option is refused in one sentence (exit 2); a failed request exits 1.
"""

from __future__ import annotations

import os
import sys
import urllib.parse


def fail(message: str, code: int = 1) -> None:
    print(f"mc (stand-in): {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse(argv: list[str]) -> tuple[bool, list[str]]:
    rest = list(argv)
    # mc's global flag; the stand-in keeps no configuration, so the folder is unused.
    while rest and rest[0].startswith("--config-dir"):
        rest = rest[2:] if rest[0] == "--config-dir" else rest[1:]
    if not rest or rest[0] != "mb":
        fail(f"only `mc mb` is provided by this stand-in, not {rest[:1]}.", 2)
    ignore_existing = False
    targets: list[str] = []
    for arg in rest[1:]:
        if arg in ("--ignore-existing", "-p"):
            ignore_existing = True
        elif arg.startswith("-"):
            fail(f"option {arg} of `mc mb` is not supported by this stand-in.", 2)
        else:
            targets.append(arg)
    if not targets:
        fail("`mc mb` needs at least one ALIAS/BUCKET.", 2)
    return ignore_existing, targets


def client(alias: str) -> object:
    import boto3
    from botocore.config import Config

    url = os.environ.get(f"MC_HOST_{alias}")
    if not url:
        fail(f"alias {alias!r} is not defined: set MC_HOST_{alias}=http://KEY:SECRET@HOST:PORT.", 2)
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.username or not parts.hostname:
        fail(f"MC_HOST_{alias} is not http(s)://KEY:SECRET@HOST:PORT.", 2)
    endpoint = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=urllib.parse.unquote(parts.username or ""),
        aws_secret_access_key=urllib.parse.unquote(parts.password or ""),
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def main(argv: list[str]) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    ignore_existing, targets = parse(argv)
    for target in targets:
        alias, _, bucket = target.partition("/")
        if not bucket or "/" in bucket.rstrip("/"):
            fail(f"target {target!r} is not ALIAS/BUCKET.", 2)
        bucket = bucket.rstrip("/")
        s3 = client(alias)
        try:
            s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists") and ignore_existing:
                print(f"Bucket `{target}` already exists.")
                continue
            fail(f"creating bucket `{target}` failed: {code or exc}.")
        except BotoCoreError as exc:
            fail(f"creating bucket `{target}` failed: {exc}.")
        print(f"Bucket created successfully `{target}`.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
