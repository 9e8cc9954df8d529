"""Object storage: local paths, file:// and s3:// (or any fsspec protocol) through one path.

`resolve(uri)` gives a (filesystem, path) pair; the helpers below read, write and list
through it and turn every storage failure into one sentence naming the URI (missing
bucket, missing key, refused credentials, unreachable endpoint).

S3 credentials and endpoint come only from the environment, the variables a cluster
fills from a Secret: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
`AWS_DEFAULT_REGION` (or `AWS_REGION`), and `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`
for non-AWS servers (MinIO, Ceph RGW), `AWS_CA_BUNDLE` for one whose certificate a private
CA signed (on a cluster: the seamless-ca file). Without keys, a pod identity
(`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_CONTAINER_CREDENTIALS_*`) is used; shared
credential files and CLI flags never are.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from components.common.durable import write_atomic
from components.common.errors import SeamlessError

# Objects larger than this go up as a multipart upload in parts of this size (S3's
# minimum part is 5 MiB); smaller ones are one PUT. Either is atomic on S3: the key
# shows nothing until the PUT or the multipart completion succeeds.
PART_SIZE = 8 * 1024 * 1024
# A dead endpoint should fail in seconds, not after botocore's long default retries.
_CONNECT_TIMEOUT_S = 10
_READ_TIMEOUT_S = 120
_RETRIES = 3
_POD_IDENTITY = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


# Object stores, by fsspec protocol. Other fsspec protocols (ftp, sftp, ssh, ...) would
# log in to arbitrary hosts with credentials written into a URL: not for data paths.
OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory")


def scheme_of(uri: str | Path) -> str:
    """The URI's scheme in lower case; '' for a local path (a one-letter scheme is a drive)."""
    if isinstance(uri, Path):
        return ""
    scheme = urlsplit(str(uri)).scheme.lower()
    return "" if len(scheme) <= 1 else scheme


def is_remote(uri: str | Path) -> bool:
    """True for object-store and other fsspec URIs (s3://, gs://, memory://, ...)."""
    return scheme_of(uri) not in ("", "file")


EPHEMERAL_DISK_ENV = "SEAMLESS_EPHEMERAL_DISK"
"""Set to `true` where the local disk goes with the pod (pipeline steps, Jobs and CronJobs
on a cluster): roots of data meant to outlive the step must then be object stores."""


def require_remote_root(env_name: str, what: str) -> None:
    """Refuse, in one sentence, a local `env_name` where the disk is ephemeral: `what`
    written there would be deleted with the pod while lineage and Feast still point at it."""
    if os.environ.get(EPHEMERAL_DISK_ENV, "").strip().lower() not in ("1", "true", "yes"):
        return
    root = os.environ.get(env_name, "").strip()
    if root and is_remote(root):
        return
    state = f"a local path ({root})" if root else "not set"
    raise SeamlessError(
        f"{env_name} is {state}, but this step's disk is deleted when its pod ends: "
        f"set {env_name} to an object-store URI (s3://bucket/prefix) in the "
        f"seamless-s3-endpoint ConfigMap so {what} outlive the step (docs/object-storage.md)."
    )


def join(base: str | Path, *parts: str) -> str:
    """`base` and `parts` joined with '/', for local paths and URIs alike."""
    text = str(base).rstrip("/")
    return "/".join([text, *(p.strip("/") for p in parts)])


def s3_endpoint() -> str | None:
    """The S3 endpoint of a non-AWS server, from the environment (None: AWS itself)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


S3_CA_ENV = "AWS_CA_BUNDLE"
"""The CA file an https S3 endpoint is verified with (boto3's own variable; the cluster's
seamless-s3-endpoint ConfigMap points it at the seamless-ca file)."""


def s3_ca_bundle() -> str | None:
    """`AWS_CA_BUNDLE` when set; one that is not a readable file is refused in one sentence
    naming the key, before botocore fails with an error that does not."""
    path = os.environ.get(S3_CA_ENV, "").strip()
    if not path:
        return None
    if not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise SeamlessError(
            f"{S3_CA_ENV}={path} is not a readable file, so the S3 endpoint's certificate "
            "cannot be verified: mount the CA there (on a cluster the seamless-ca ConfigMap) "
            "or unset it to trust the system's CAs."
        )
    return path


def s3_options(uri: str = "s3://") -> dict[str, Any]:
    """s3fs options from the environment alone (see the module docstring)."""
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    options: dict[str, Any] = {
        "use_listings_cache": False,  # another writer's objects must show at once
        "default_block_size": PART_SIZE,
        "config_kwargs": {
            "connect_timeout": _CONNECT_TIMEOUT_S,
            "read_timeout": _READ_TIMEOUT_S,
            "retries": {"max_attempts": _RETRIES, "mode": "standard"},
            # Checksums only where S3 requires them: over HTTPS botocore otherwise streams
            # uploads as aws-chunked with a trailing checksum, which S3-compatible servers
            # such as Ceph RGW (the stack's MinIO stand-in) refuse (MissingContentLength).
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        },
    }
    if key and secret:
        options.update(key=key, secret=secret, token=os.environ.get("AWS_SESSION_TOKEN") or None)
    elif not any(os.environ.get(v) for v in _POD_IDENTITY):
        raise SeamlessError(
            f"{uri} needs S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "in the environment (on a cluster, from a Secret)."
        )
    client: dict[str, Any] = {}
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if region:
        client["region_name"] = region
    endpoint = s3_endpoint()
    if endpoint:
        options["endpoint_url"] = endpoint
    ca = s3_ca_bundle()
    if ca:
        client["verify"] = ca
    if client:
        options["client_kwargs"] = client
    return options


def resolve(uri: str | Path) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for a local path, file:// or any fsspec URI."""
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    scheme = scheme_of(uri)
    if scheme == "":
        return LocalFileSystem(), str(Path(uri).expanduser().absolute())
    text = str(uri)
    if scheme not in (*OBJECT_STORE_SCHEMES, "file"):
        stores = ", ".join(f"{s}://" for s in OBJECT_STORE_SCHEMES)
        raise SeamlessError(
            f"{scheme}:// is not an object store Seamless reads or writes; "
            f"use a local path, file:// or one of {stores}."
        )
    if scheme in ("s3", "s3a"):
        from s3fs import S3FileSystem

        fs = S3FileSystem(**s3_options(text))
        return fs, fs._strip_protocol(text)
    try:
        fs, path = fsspec.core.url_to_fs(text)
    except ImportError:
        raise SeamlessError(
            f"{text}: the filesystem for {scheme}:// is not installed (an fsspec package)."
        ) from None
    except (ValueError, OSError) as exc:
        raise SeamlessError(explain(text, exc, "open")) from None
    return fs, path


def _bucket(uri: str) -> str:
    return urlsplit(uri).netloc


def _error_code(exc: BaseException) -> str:
    """The S3 error code (NoSuchBucket, AccessDenied, ...) anywhere in the exception chain."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            code = str((response.get("Error") or {}).get("Code") or "")
            if code and not code.isdigit():  # a HEAD answer has no body: "403", "404"
                return code
        seen = seen.__cause__ or seen.__context__
    return ""


_BAD_CREDENTIALS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken")


def explain(
    uri: str | Path,
    exc: BaseException,
    action: str = "read",
    bucket_exists: bool | None = None,
    code: str = "",
) -> str:
    """One sentence naming `uri` for a storage failure of `action` (read, write, list).

    `bucket_exists` and `code` (when the caller could probe) tell a missing bucket from
    a missing key, and refused credentials from a denied permission, where the error
    itself does not say which (a HEAD answer has no body).
    """
    code = code or _error_code(exc)
    remote = is_remote(uri)
    bucket = _bucket(str(uri))
    if code == "NoSuchBucket" or (isinstance(exc, FileNotFoundError) and bucket_exists is False):
        return f"Cannot {action} {uri}: bucket '{bucket}' does not exist."
    if code == "InvalidBucketName":
        return f"Cannot {action} {uri}: '{bucket}' is not a valid bucket name."
    if code in _BAD_CREDENTIALS:
        return (
            f"Cannot {action} {uri}: the server refused the credentials ({code}); check "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        )
    if code == "AccessDenied" or isinstance(exc, PermissionError):
        return f"Cannot {action} {uri}: access denied (the credentials lack permission)."
    if code == "NoSuchKey" or isinstance(exc, FileNotFoundError):
        return f"Cannot {action} {uri}: no such {'object' if remote else 'file'}."
    if _unreachable(exc):
        where = s3_endpoint() if scheme_of(uri) in ("s3", "s3a") else None
        return f"Cannot {action} {uri}: the endpoint {where or 'of ' + str(uri)} is unreachable."
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"Cannot {action} {uri}: {first[:200].rstrip('.')}."


def _unreachable(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        name = type(seen).__name__
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError"):
            return True
        if isinstance(seen, ConnectionError | TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def storage_errors(uri: str | Path, action: str = "read", fs: Any = None) -> Iterator[None]:
    """Turn a storage failure inside the block into a `SeamlessError` naming `uri`.

    With `fs` (an S3 filesystem), a bare "not found" is told apart: bucket or key.
    """
    try:
        yield
    except SeamlessError:
        raise
    except Exception as exc:
        if not _is_storage_error(exc):
            raise
        known: bool | None = None
        code = ""
        if fs is not None and scheme_of(uri) in ("s3", "s3a") and not _error_code(exc):
            if isinstance(exc, FileNotFoundError):
                known = _bucket_exists(fs, _bucket(str(uri)))
            elif isinstance(exc, PermissionError):
                code = _credentials_code(fs)
        raise SeamlessError(explain(uri, exc, action, known, code)) from None


def _credentials_code(fs: Any) -> str:
    """The server's word on the credentials themselves ('' when it accepts them)."""
    try:
        fs.call_s3("list_buckets")
    except Exception as exc:
        code = _error_code(exc)
        return code if code in _BAD_CREDENTIALS else ""
    return ""


def _bucket_exists(fs: Any, bucket: str) -> bool | None:
    try:
        fs.call_s3("head_bucket", Bucket=bucket)
    except FileNotFoundError:
        return False
    except Exception:
        return None  # cannot tell (no permission to head the bucket, ...)
    return True


def _is_storage_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    module = type(exc).__module__
    return module.startswith(("botocore", "aiobotocore", "s3fs", "aiohttp", "fsspec"))


def read_bytes(uri: str | Path) -> bytes:
    fs, path = resolve(uri)
    with storage_errors(uri, fs=fs):
        return bytes(fs.cat_file(path))


def write_bytes(uri: str | Path, data: bytes) -> None:
    """Write a whole object/file at once: readers see nothing or all of it.

    On S3 a PUT (or a multipart upload's completion, above `PART_SIZE`) is atomic; a
    local file is written beside the target, fsynced and renamed.
    """
    fs, path = resolve(uri)
    with storage_errors(uri, "write", fs=fs):
        if not is_remote(uri):
            write_atomic(path, data)
            return
        with fs.open(path, "wb") as fh:
            fh.write(data)


def put_file(local: str | Path, uri: str | Path) -> None:
    """Upload a local file to `uri` (multipart above `PART_SIZE`); atomic like `write_bytes`."""
    fs, path = resolve(uri)
    with storage_errors(uri, "write", fs=fs), open(local, "rb") as src, fs.open(path, "wb") as dst:
        while block := src.read(PART_SIZE):
            dst.write(block)


def sha256(uri: str | Path) -> str:
    """Hex SHA-256 of an object/file, streamed (large objects are not held in memory)."""
    import hashlib

    fs, path = resolve(uri)
    h = hashlib.sha256()
    with storage_errors(uri, fs=fs), fs.open(path, "rb", block_size=PART_SIZE) as fh:
        while block := fh.read(PART_SIZE):
            h.update(block)
    return h.hexdigest()


def get_file(uri: str | Path, local: str | Path) -> None:
    """Download `uri` to the local file `local` (overwritten)."""
    fs, path = resolve(uri)
    with (
        storage_errors(uri, fs=fs),
        fs.open(path, "rb", block_size=PART_SIZE) as src,
        open(local, "wb") as dst,
    ):
        while block := src.read(PART_SIZE):
            dst.write(block)


def exists(uri: str | Path) -> bool:
    fs, path = resolve(uri)
    with storage_errors(uri, fs=fs):
        return bool(fs.exists(path))


def size(uri: str | Path) -> int:
    fs, path = resolve(uri)
    with storage_errors(uri, fs=fs):
        return int(fs.size(path))


def list_files(uri: str | Path) -> list[str]:
    """Every object/file under the prefix `uri`, as full URIs in name order.

    A missing bucket is an error; an empty or absent prefix is an empty list.
    """
    fs, path = resolve(uri)
    with storage_errors(uri, "list", fs=fs):
        if scheme_of(uri) in ("s3", "s3a"):
            # find() on a missing bucket answers [], which would hide a typo.
            fs.call_s3("head_bucket", Bucket=_bucket(str(uri)))
        found = fs.find(path)
    if not is_remote(uri):
        return sorted(found)
    proto = scheme_of(uri)
    return sorted(f"{proto}://{p.lstrip('/')}" for p in found)
