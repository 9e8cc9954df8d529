#!/usr/bin/python3
"""`minio server DIR [--address HOST:PORT]` for the Docker stack: Ceph's RADOS Gateway.

The stand-in for quay.io/minio/minio (docker/stack/substitutes.yaml). It honours the part
of MinIO's contract the manifests use, with Debian's Ceph 16 doing the S3 work:
- one monitor, one `memstore` OSD and radosgw, all in the foreground under this process
  (the monitor's database under DIR; objects in memory, so each start is an empty store:
  the cluster is built afresh under DIR/.seamless-rgw);
- MINIO_ROOT_USER / MINIO_ROOT_PASSWORD become the S3 user's access and secret key;
- the S3 API on --address (default :9000); with --certs-dir DIR holding public.crt and
  private.key (MinIO's layout; CAs/ is not read: no client certificates) HTTPS only there,
  and plain HTTP on 127.0.0.1:9080 inside the container for its own start-up only;
- /minio/health/live and /minio/health/ready answer 200 once the store serves requests:
  they are public-read objects `health/live` and `health/ready` of a bucket `minio`,
  written after the user exists, so readiness means "S3 answers with these keys".
Runs as any uid with a read-only root: it writes under DIR and $TMPDIR (or /tmp) only.
Any daemon that exits ends the container (non-zero), as a crashed MinIO would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import FrameType

MON_PORT = 6789
HEALTH_BUCKET = "minio"
# Below the manifest's 1Gi memory limit: the store reports itself full before the
# container is killed for memory.
STORE_BYTES = 512 * 1024 * 1024


def fail(message: str) -> None:
    print(f"minio (stand-in): {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def parse(argv: list[str]) -> tuple[Path, str, int, Path | None]:
    """DIR, host, port and certs dir from `server DIR [--address HOST:PORT] [--certs-dir
    CERTS]`; anything else is refused."""
    if not argv or argv[0] != "server":
        fail(
            "only `minio server DIR [--address HOST:PORT] [--certs-dir CERTS]` is provided, "
            f"not {argv[:1]}."
        )
    rest = argv[1:]
    address = ":9000"
    certs: Path | None = None
    dirs: list[str] = []
    while rest:
        arg = rest.pop(0)
        if arg == "--address" and rest:
            address = rest.pop(0)
        elif arg.startswith("--address="):
            address = arg.split("=", 1)[1]
        elif arg == "--certs-dir" and rest:
            certs = Path(rest.pop(0))
        elif arg.startswith("--certs-dir="):
            certs = Path(arg.split("=", 1)[1])
        elif arg.startswith("-"):
            fail(f"option {arg} is not supported by this stand-in (only --address, --certs-dir).")
        else:
            dirs.append(arg)
    if len(dirs) != 1:
        fail(f"exactly one data directory is supported, got {dirs}.")
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        fail(f"--address {address!r} is not HOST:PORT.")
    return Path(dirs[0]), host or "0.0.0.0", int(port), certs


def ceph_conf(
    state: Path,
    mon_port: int,
    rgw_endpoint: str,
    store_bytes: int,
    tls: tuple[str, Path, Path] | None = None,
) -> str:
    """ceph.conf of a one-monitor, one-memstore-OSD cluster with radosgw on `rgw_endpoint`
    (plain HTTP) and, given `tls` = (endpoint, certificate file, key file), HTTPS on that
    endpoint too; every file under `state`, no authentication between daemons (loopback
    only). Shared with tests/storage/rgw.py, which loads this file."""
    frontend = f"beast endpoint={rgw_endpoint}"
    if tls is not None:
        endpoint, cert, key = tls
        frontend += f" ssl_endpoint={endpoint} ssl_certificate={cert} ssl_private_key={key}"
    return f"""[global]
fsid = {uuid.uuid4()}
mon host = v1:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
osd objectstore = memstore
memstore device bytes = {store_bytes}
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# The monitor exits at start (ENOSPC) when its filesystem has under 5% free, which a
# build machine's shared disk often has; its database is a few MB: only a full disk stops it.
mon data avail crit = 0
mon data avail warn = 0
# The OSD would send these commands while it boots; a command that races the client's
# first monitor map carries fsid 0 and is refused, so the caller sends them (retried).
osd crush update on start = false
osd class update on start = false
run dir = {state}/run
crash dir = {state}/crash
admin socket = {state}/run/$name.asok
log file = {state}/log/$name.log
pid file = {state}/run/$name.pid
mon data = {state}/mon/$id
osd data = {state}/osd/$id
keyring = {state}/keyring
[client.rgw]
rgw frontends = {frontend}
rgw data = {state}/rgw
rgw thread pool size = 32
"""


# Plain HTTP inside the container when the S3 port is HTTPS: the entrypoint's own set-up.
SETUP_PORT = 9080


class Cluster:
    def __init__(self, data: Path, host: str, port: int, certs: Path | None = None) -> None:
        self.state = data / ".seamless-rgw"
        self.host, self.port = host, port
        self.tls: tuple[str, Path, Path] | None = None
        if certs is not None:
            cert, key = certs / "public.crt", certs / "private.key"
            for f in (cert, key):
                if not os.access(f, os.R_OK):
                    fail(f"--certs-dir {certs}: {f.name} is missing or not readable.")
            self.tls = (f"{host}:{port}", cert, key)
        # Where the entrypoint itself talks plain HTTP (loopback only).
        self.setup_port = SETUP_PORT if self.tls else port
        self.conf = self.state / "ceph.conf"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.commands: list[list[str]] = []  # each daemon's command, by position in procs
        self.env = {**os.environ, "CEPH_CONF": str(self.conf)}

    def write_conf(self) -> None:
        # A fresh cluster every start: memstore keeps no objects across restarts, and a
        # monitor that remembered pools whose data is gone would never become healthy.
        shutil.rmtree(self.state, ignore_errors=True)
        s = self.state
        for sub in ("run", "log", "mon", "osd/0", "rgw", "crash"):
            (s / sub).mkdir(parents=True, exist_ok=True)
        (s / "keyring").touch()
        self.conf.write_text(
            ceph_conf(
                self.state,
                MON_PORT,
                f"127.0.0.1:{SETUP_PORT}" if self.tls else f"{self.host}:{self.port}",
                STORE_BYTES,
                self.tls,
            )
        )

    def run(self, *args: str, attempts: int = 1) -> str:
        """A Ceph command; retried when asked: one sent while the client still learns the
        monitor map (fsid 0) is refused, a Ceph start-up race."""
        for attempt in range(attempts):
            result = subprocess.run(
                list(args), capture_output=True, text=True, timeout=120, env=self.env
            )
            if result.returncode == 0:
                return result.stdout
            if attempt == attempts - 1:
                fail(f"{' '.join(args[:3])} failed: {result.stderr.strip()[-800:]}")
            self.fail_if_a_daemon_exited()
            time.sleep(0.5)
        raise AssertionError("unreachable")

    def fail_if_a_daemon_exited(self) -> None:
        """A command waiting on a daemon that is gone would only time out: say why instead."""
        for command, proc in zip(self.commands, self.procs, strict=True):
            if proc.poll() is not None:
                fail(f"{command[0]} exited ({proc.returncode}): {self.log_tail()}")

    def daemon(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.state / "log" / "daemons.out").open("ab")
        return subprocess.Popen([*args, "-f"], stdout=log, stderr=log, cwd=self.state, env=self.env)

    def start_daemon(self, *args: str) -> None:
        self.commands.append(list(args))
        self.procs.append(self.daemon(*args))

    def log_tail(self) -> str:
        logs = sorted((self.state / "log").glob("*"))
        return " | ".join(f"{p.name}: {p.read_text(errors='replace')[-600:]}" for p in logs)

    def start(self, timeout_s: float = 180) -> None:
        self.write_conf()
        fsid = self.conf.read_text().split("fsid = ", 1)[1].split("\n", 1)[0]
        monmap = str(self.state / "monmap")
        self.run("monmaptool", "--create", "--add", "a", f"v1:127.0.0.1:{MON_PORT}",
                 "--fsid", fsid, monmap)  # fmt: skip
        self.run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap)
        self.start_daemon("ceph-mon", "-i", "a")
        osd_id = self.run("ceph", "--connect-timeout", "30", "osd", "create", attempts=40).strip()
        self.run("ceph-osd", "-i", osd_id, "--mkfs")
        self.run("ceph", "osd", "crush", "add", f"osd.{osd_id}", "1", "root=default",
                 "host=localhost", attempts=40)  # fmt: skip
        self.start_daemon("ceph-osd", "-i", osd_id)
        self.start_daemon("radosgw", "-n", "client.rgw")
        deadline = time.monotonic() + timeout_s
        restarts = 0
        while not self.answers():
            for i, proc in enumerate(self.procs):
                if proc.poll() is None:
                    continue
                # The same start-up race can stop a daemon's first command: start it again.
                if restarts >= 3:
                    fail(f"{self.commands[i][0]} exited while starting: {self.log_tail()}")
                restarts += 1
                self.procs[i] = self.daemon(*self.commands[i])
            if time.monotonic() > deadline:
                fail(f"radosgw did not answer within {timeout_s:.0f} s: {self.log_tail()}")
            time.sleep(0.3)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.setup_port}/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def user_and_health(self, access_key: str, secret_key: str) -> None:
        import boto3
        from botocore.config import Config

        self.run("radosgw-admin", "user", "create", "--uid=minio-root",
                 "--display-name=MINIO_ROOT_USER", f"--access-key={access_key}",
                 f"--secret-key={secret_key}", attempts=40)  # fmt: skip
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.setup_port}",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        s3.create_bucket(Bucket=HEALTH_BUCKET)
        for key in ("health/live", "health/ready"):
            s3.put_object(Bucket=HEALTH_BUCKET, Key=key, Body=b"ok\n", ACL="public-read")

    def stop(self, *_: object) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()

    def supervise(self) -> int:
        while True:
            for command, proc in zip(self.commands, self.procs, strict=True):
                if proc.poll() is not None:
                    print(f"minio (stand-in): {command[0]} exited ({proc.returncode}): "
                          f"{self.log_tail()}", file=sys.stderr, flush=True)  # fmt: skip
                    self.stop()
                    return 1
            time.sleep(1)


def main(argv: list[str]) -> int:
    data, host, port, certs = parse(argv)
    user = os.environ.get("MINIO_ROOT_USER", "")
    password = os.environ.get("MINIO_ROOT_PASSWORD", "")
    # MinIO's own rule: a user of 3+ and a password of 8+ characters.
    if len(user) < 3 or len(password) < 8:
        fail("MINIO_ROOT_USER (3+ characters) and MINIO_ROOT_PASSWORD (8+) must be set.")
    if not data.is_dir() or not os.access(data, os.W_OK):
        fail(f"data directory {data} is missing or not writable.")
    cluster = Cluster(data, host, port, certs)

    def terminate(signum: int, _frame: FrameType | None) -> None:
        cluster.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    cluster.start()
    cluster.user_and_health(user, password)
    print(
        f"minio (stand-in): S3 API on {host}:{port}{' (HTTPS)' if certs else ''} "
        "(Ceph RADOS Gateway, memstore), "
        f"health objects in bucket {HEALTH_BUCKET}",
        file=sys.stderr,
        flush=True,
    )
    return cluster.supervise()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
