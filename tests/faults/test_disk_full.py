"""The artifact store's disk is full: a stage writing there fails clearly, leaves nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.errors import SeamlessError
from components.common.tables import write_dataset
from tests.helpers.require import unavailable

pytestmark = pytest.mark.slow


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root / CAP_SYS_ADMIN), unmounted afterwards."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        unavailable(
            "cannot mount a 1 MiB tmpfs: run the tests as root, as .ci/run does "
            f"({done.stderr.strip()})"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_write_dataset_on_a_full_disk_fails_clearly_and_leaves_nothing(tiny_disk: Path) -> None:
    rng = np.random.default_rng(0)
    big = pd.DataFrame({"x": rng.random(400_000), "y": rng.random(400_000)})  # ~6 MB
    target = tiny_disk / "dataset"
    try:
        with pytest.raises(SeamlessError) as info:
            write_dataset(target, {"big": big})
        message = str(info.value)
        assert "\n" not in message and str(target) in message, message
    finally:
        # All or nothing holds even when the error is not clear: no partial folder remains.
        assert not target.exists()
        assert list(tiny_disk.iterdir()) == [], list(tiny_disk.iterdir())
