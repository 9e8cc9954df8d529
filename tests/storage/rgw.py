"""A real S3 server on 127.0.0.1: Ceph's RADOS Gateway over a one-OSD in-memory cluster.

Debian's `radosgw`, `ceph-mon` and `ceph-osd` (Ceph 16 Pacific) are the real thing, not
an emulator: one monitor and one `memstore` OSD (objects in RAM, nothing on disk but
the monitor's small database) with authentication between daemons off, and RGW in
front with one S3 user, every daemon bound to 127.0.0.1. It starts in about 10 s. Every
daemon runs in the foreground under our own process, so stopping it kills exactly what
we started.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from components.common.net import free_port
from tests.helpers.require import unavailable

BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")
INSTALL = "apt-get install radosgw ceph-mon ceph-osd"
ACCESS_KEY = "SEAMLESSTESTKEY"
SECRET_KEY = "seamless-test-secret-key"
REGION = "us-east-1"


def _stand_in() -> Any:
    """docker/stack/minio/minio.py, the Docker stack's MinIO stand-in: one cluster layout
    (its ceph.conf) for both."""
    path = Path(__file__).resolve().parents[2] / "docker" / "stack" / "minio" / "minio.py"
    spec = importlib.util.spec_from_file_location("seamless_minio_stand_in", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RadosGateway:
    """Start with `start()`, stop with `stop()`; `endpoint` is the S3 URL."""

    def __init__(self, root: Path, tls: tuple[Path, Path] | None = None) -> None:
        """`tls` = (certificate file, key file): HTTPS on `tls_port` too (`tls_endpoint`),
        beside plain HTTP on `port`, as MinIO with --certs-dir serves it on the cluster."""
        self.root = root
        self.mon_port = free_port()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.tls = tls
        self.tls_port = free_port() if tls else 0
        self.tls_endpoint = f"https://127.0.0.1:{self.tls_port}" if tls else ""
        self.conf = root / "ceph.conf"
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        """The variables the project reads (the same ones the cluster's Secret sets)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def _write_conf(self) -> None:
        r = self.root
        for sub in ("run", "log", "mon", "osd/0", "rgw", "crash"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "keyring").touch()
        tls = (f"127.0.0.1:{self.tls_port}", *self.tls) if self.tls else None
        conf = _stand_in().ceph_conf(r, self.mon_port, f"127.0.0.1:{self.port}", 1 << 30, tls)
        self.conf.write_text(conf)

    def _run(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [*args, "-c", str(self.conf)], capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()[-1500:]}")
        return result.stdout

    def _run_retried(self, *args: str, attempts: int = 20) -> str:
        """A `ceph` command, retried: one sent while the client is still learning the
        monitor map (fsid 0) is refused with EPERM, a Ceph start-up race."""
        for attempt in range(attempts):
            try:
                return self._run(*args)
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                # Waiting on a daemon that is gone would only time out: say why instead.
                for proc in self.procs:
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"{proc.args[0]} exited ({proc.returncode}): {self.log_tail()}"
                        ) from None
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _daemon(self, *args: str) -> None:
        log = (self.root / "log" / "daemons.out").open("ab")
        self.procs.append(
            subprocess.Popen(
                [*args, "-f", "-c", str(self.conf)],
                stdout=log,
                stderr=log,
                start_new_session=True,
                cwd=self.root,
            )
        )

    def start(self, timeout_s: float = 120) -> None:
        missing = [b for b in BINARIES if shutil.which(b) is None]
        if missing:
            unavailable(f"the S3 tests need Ceph's RADOS Gateway ({', '.join(missing)}): {INSTALL}")
        self._write_conf()
        fsid = self.conf.read_text().split("fsid = ", 1)[1].split("\n", 1)[0]
        monmap = str(self.root / "monmap")
        subprocess.run(
            ["monmaptool", "--create", "--add", "a", f"v1:127.0.0.1:{self.mon_port}",
             "--fsid", fsid, monmap],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap)
        self._daemon("ceph-mon", "-i", "a")
        osd_id = self._run_retried("ceph", "--connect-timeout", "30", "osd", "create").strip()
        self._run("ceph-osd", "-i", osd_id, "--mkfs")
        self._run_retried(
            "ceph", "osd", "crush", "add", f"osd.{osd_id}", "1", "root=default", "host=localhost"
        )
        self._daemon("ceph-osd", "-i", osd_id)
        self._daemon("radosgw", "-n", "client.rgw")
        deadline = time.monotonic() + timeout_s
        restarts = 0
        while True:
            for i, proc in enumerate(self.procs):
                if proc.poll() is None:
                    continue
                # The same start-up race can stop a daemon's first command: start it again.
                if restarts >= 3:
                    raise RuntimeError(f"{proc.args[0]} exited: {self.log_tail()}")
                restarts += 1
                self._daemon(*[str(a) for a in proc.args[:-3]])
                self.procs[i] = self.procs.pop()
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.endpoint, timeout=2).ok:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"radosgw did not answer within {timeout_s} s: {self.log_tail()}"
                )
            time.sleep(0.3)
        self._run_retried(
            "radosgw-admin", "user", "create", "--uid=seamless", "--display-name=seamless",
            f"--access-key={ACCESS_KEY}", f"--secret-key={SECRET_KEY}",
        )  # fmt: skip

    def log_tail(self) -> str:
        logs = sorted((self.root / "log").glob("*"))
        return " | ".join(f"{p.name}: {p.read_text(errors='replace')[-600:]}" for p in logs)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        self.procs.clear()


@contextlib.contextmanager
def running(root: Path, tls: tuple[Path, Path] | None = None) -> Any:
    """A started `RadosGateway` in `root`, stopped on the way out (fixtures' shape)."""
    server = RadosGateway(root, tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()
