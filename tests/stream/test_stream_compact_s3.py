"""Compaction of the pushed-events log in an object store (the cluster's case: the
consumer's offline root is `s3://...`), on a real S3 server (Ceph's RADOS Gateway on
loopback, tests/storage/rgw.py): the same rows before and after, a crash between the
deletes leaves a readable log, and readers during compactions lose and repeat nothing."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common import storage
from components.common.config import SeamlessConfig
from components.features.repo import OFFLINE_ROOT_ENV
from components.stream import compaction, pushed
from tests.stream.world import killed_between_deletes, killed_while_writing

pytestmark = [pytest.mark.slow, pytest.mark.stream]
VIEW = "facts_view"


@pytest.fixture(scope="module")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.storage.rgw import running

    with running(Path(tmp_path_factory.mktemp("rgw"))) as server:
        yield server


@pytest.fixture()
def s3_root(rgw: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket as the offline root, the server's credentials in the environment."""
    import boto3

    for key in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(key, raising=False)
    env = rgw.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    name = f"seamless-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"],
    ).create_bucket(Bucket=name)  # fmt: skip
    root = f"s3://{name}/feast"
    monkeypatch.setenv(OFFLINE_ROOT_ENV, root)
    return root


def write_parts(config: SeamlessConfig, repo: Path, n_parts: int, start: int = 0) -> None:
    """`n_parts` parts of 3 events each; every fourth part repeats an earlier event id
    (a batch redone under another name), with other values that readers must not keep."""
    for p in range(start, start + n_parts):
        ids = [f"e-{p}-{i}" for i in range(3)]
        if p % 4 == 3:
            ids[0] = f"e-{p - 1}-0"
        frame = pd.DataFrame(
            {
                "customer_id": [100 + p] * 3,
                "event_timestamp": pd.to_datetime([1_700_000_000 + p * 10 + i for i in range(3)],
                                                  unit="s", utc=True),
                "score": [float(p * 10 + i) for i in range(3)],
                "tier": ["s"] * 3,
                pushed.EVENT_ID_COLUMN: ids,
                pushed.STREAM_ID_COLUMN: [f"{1_000_000 + p}-{i}" for i in range(3)],
            }
        )  # fmt: skip
        frame["tier"] = frame["tier"].astype("object")
        pushed.write_part(config, repo, VIEW, frame[pushed.columns_of(config, VIEW)])


def names(repo: Path) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in storage.list_files(pushed.pushed_root(repo, VIEW))]


def test_compaction_in_s3(
    s3_root: str, stream_config: SeamlessConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "feast"
    write_parts(stream_config, repo, 12)
    assert pushed.pushed_root(repo, VIEW).startswith("s3://") and len(names(repo)) == 12
    before = pushed.read_pushed(repo, VIEW)
    assert before is not None and len(before) == 12 * 3 - 3  # three repeated event ids
    assert before.set_index(pushed.EVENT_ID_COLUMN).loc["e-2-0", "score"] == 20.0  # first wins

    # Killed between the deletes: the merged object and the parts left read the same.
    with killed_between_deletes(monkeypatch, after=4), pytest.raises(KeyboardInterrupt):
        compaction.compact(repo, VIEW)
    assert len(names(repo)) == 12 - 4 + 1
    pd.testing.assert_frame_equal(pushed.read_pushed(repo, VIEW), before)

    done = compaction.compact(repo, VIEW)
    assert done.parts_merged == 9 and done.rows == len(before) and done.kept == 0
    (only,) = names(repo)
    assert only.startswith(pushed.COMPACTED_PREFIX)
    pd.testing.assert_frame_equal(pushed.read_pushed(repo, VIEW), before)


def test_readers_during_s3_compactions(
    s3_root: str, stream_config: SeamlessConfig, tmp_path: Path
) -> None:
    repo = tmp_path / "feast"
    write_parts(stream_config, repo, 8)
    before = pushed.read_pushed(repo, VIEW)
    assert before is not None
    stop, reads, failures = threading.Event(), [], []

    def reader() -> None:
        while not stop.is_set():
            try:
                got = pushed.read_pushed(repo, VIEW)
            except Exception as exc:
                failures.append(repr(exc))
                return
            assert got is not None
            known = got[got[pushed.EVENT_ID_COLUMN].isin(before[pushed.EVENT_ID_COLUMN])]
            if not got[pushed.EVENT_ID_COLUMN].is_unique or not known.reset_index(drop=True).equals(
                before
            ):
                failures.append(f"{len(known)} of {len(before)} rows, unique: "
                                f"{got[pushed.EVENT_ID_COLUMN].is_unique}")  # fmt: skip
                return
            reads.append(len(got))

    thread = threading.Thread(target=reader)
    thread.start()
    for n in range(6):
        write_parts(stream_config, repo, 1, start=100 + n)
        compaction.compact(repo, VIEW)
        seen, deadline = len(reads), time.monotonic() + 30  # a read between compactions
        while len(reads) == seen and not failures and time.monotonic() < deadline:
            time.sleep(0.01)
    stop.set()
    thread.join(timeout=120)
    assert not failures, failures
    assert reads, "the reader never finished a read"
    final = pushed.read_pushed(repo, VIEW)
    # 6 parts of 3, part 103 repeating an event id of part 102
    assert final is not None and len(final) == len(before) + 6 * 3 - 1 and len(names(repo)) == 1


def test_a_compaction_killed_mid_upload_leaves_no_object(
    s3_root: str, stream_config: SeamlessConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merged object streams up as a multipart upload (memory: one upload part); a
    compaction killed after parts of it went up aborts the upload: no object, no upload
    left pending, the parts as they were; the next compaction does the job."""
    import os

    import boto3

    repo = tmp_path / "feast"
    for p in range(8):  # ~1.2 MB of incompressible rows per part: ~10 MB merged
        ms = [1_800_000_000_000 + p * 2000 + i for i in range(2000)]
        frame = pd.DataFrame(
            {
                "customer_id": [100 + p] * 2000,
                "event_timestamp": pd.to_datetime(ms, unit="ms", utc=True),
                "score": [float(i) for i in range(2000)],
                "tier": [os.urandom(300).hex() for _ in range(2000)],
                pushed.EVENT_ID_COLUMN: [f"big-{m}" for m in ms],
                pushed.STREAM_ID_COLUMN: [f"{m}-0" for m in ms],
            }
        )  # fmt: skip
        frame["tier"] = frame["tier"].astype("object")
        pushed.write_part(stream_config, repo, VIEW, frame[pushed.columns_of(stream_config, VIEW)])
    before = pushed.read_pushed(repo, VIEW)
    listed = names(repo)
    from s3fs.core import S3File

    real_discard = S3File.discard
    aborted: list[bool] = []

    def discard(self: Any) -> None:
        aborted.append(bool(self.mpu))  # an upload had begun: parts of it went up
        real_discard(self)

    with monkeypatch.context() as m, killed_while_writing(monkeypatch, after=7) as writes:
        m.setattr(S3File, "discard", discard)
        m.setattr(storage, "PART_SIZE", 5 * 2**20)  # S3's smallest upload part
        m.setattr(compaction, "ROW_GROUP_ROWS", 2000)
        with pytest.raises(KeyboardInterrupt):
            compaction.compact(repo, VIEW)
    assert len(writes) == 7 and aborted == [True]  # ~8 MB written: an upload part went up
    env = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                      "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}  # fmt: skip
    s3 = boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"],
    )  # fmt: skip
    bucket = s3_root.split("/")[2]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert names(repo) == listed
    pd.testing.assert_frame_equal(pushed.read_pushed(repo, VIEW), before)

    done = compaction.compact(repo, VIEW)
    assert done.rows == 16_000 and done.parts_merged == 8 and len(names(repo)) == 1
    pd.testing.assert_frame_equal(pushed.read_pushed(repo, VIEW), before)
