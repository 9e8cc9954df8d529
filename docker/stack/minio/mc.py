#!/usr/bin/python3
"""`mc [--config-dir DIR] mb [--ignore-existing|-p] ALIAS/BUCKET...` over boto3.

The stand-in for the MinIO client's `mb` command only (what the minio-buckets Job runs):
the alias comes from MC_HOST_<ALIAS>=http(s)://KEY:SECRET@HOST:PORT, as with mc. As mc, it
trusts the CA files in `<config-dir>/certs/CAs/` (default config dir ~/.mc) besides the
system's, and checks the server's name. Any other command or option is refused in one
sentence (exit 2); a failed request exits 1.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from pathlib import Path


def fail(message: str, code: int = 1) -> None:
    print(f"mc (stand-in): {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse(argv: list[str]) -> tuple[bool, list[str], Path]:
    rest = list(argv)
    # mc's global flag: the stand-in keeps no configuration there, only reads certs/CAs.
    config_dir = Path.home() / ".mc"
    while rest and rest[0].startswith("--config-dir"):
        if rest[0] == "--config-dir" and len(rest) > 1:
            config_dir, rest = Path(rest[1]), rest[2:]
        elif rest[0].startswith("--config-dir="):
            config_dir, rest = Path(rest[0].split("=", 1)[1]), rest[1:]
        else:
            fail("--config-dir needs a folder.", 2)
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
    return ignore_existing, targets, config_dir


def ca_bundle(config_dir: Path) -> str | bool:
    """The system's CAs plus those in `<config-dir>/certs/CAs` as one bundle file (True:
    the system's only), as mc trusts them."""
    cas = sorted(p for p in (config_dir / "certs" / "CAs").glob("*") if p.is_file())
    if not cas:
        return True
    import ssl
    import tempfile

    parts = [p.read_bytes() for p in cas]
    system = ssl.get_default_verify_paths().cafile
    if system and os.path.isfile(system):
        parts.insert(0, Path(system).read_bytes())
    fd, bundle = tempfile.mkstemp(prefix="mc-cas-", suffix=".pem")
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"\n".join(parts))
    return bundle


def client(alias: str, verify: str | bool = True) -> object:
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
        verify=verify,
    )


def main(argv: list[str]) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    ignore_existing, targets, config_dir = parse(argv)
    verify = ca_bundle(config_dir)
    for target in targets:
        alias, _, bucket = target.partition("/")
        if not bucket or "/" in bucket.rstrip("/"):
            fail(f"target {target!r} is not ALIAS/BUCKET.", 2)
        bucket = bucket.rstrip("/")
        s3 = client(alias, verify)
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
