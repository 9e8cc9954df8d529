"""Load shedding on event-loop lag (components/serve/overload.py): the budget logic, and
an app whose loop is reported saturated refuses predictions with 503 + Retry-After while
health, readiness and metrics answer. No timing assertions: the lag signal is simulated."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from components.common.config import SeamlessConfig
from components.common.errors import SeamlessError
from components.serve.api.app import create_app
from components.serve.overload import LoopLag
from components.serve.settings import ServeSettings
from tests.serving.conftest import make_settings


def test_lag_above_the_budget_sheds_until_a_sample_below_it() -> None:
    samples: list[float] = []
    lag = LoopLag(0.05, on_sample=samples.append)
    assert not lag.shedding
    lag.observe(0.02)
    assert not lag.shedding
    lag.observe(0.05)  # at the budget: still served
    assert not lag.shedding
    lag.observe(0.3)  # one stall (a model swap, a GC pause) is not overload
    assert not lag.shedding
    lag.observe(0.02)
    assert not lag.shedding
    lag.observe(0.3)
    assert not lag.shedding
    lag.observe(0.2)  # late twice in a row: overloaded
    assert lag.shedding and lag.retry_after_s() == 1
    lag.observe(2.5)
    assert lag.shedding and lag.retry_after_s() == 3
    lag.observe(0.01)
    assert not lag.shedding
    lag.observe(-0.001)  # a timer that fired early is no lag
    assert lag.lag_s == 0.0 and not lag.shedding
    assert samples == [0.02, 0.05, 0.3, 0.02, 0.3, 0.2, 2.5, 0.01, 0.0]


def test_the_sampler_is_slow_while_the_loop_keeps_up_and_fast_once_it_lags() -> None:
    lag = LoopLag(0.05)
    assert lag.quiet_s == 0.05 and lag.next_interval_s() == 0.05
    lag.observe(0.02)
    assert lag.next_interval_s() == 0.05
    lag.observe(0.03)  # past half the budget: watch closely
    assert lag.next_interval_s() == lag.interval_s == 0.005
    lag.observe(0.3)  # over the budget once: not shedding yet, still fast
    assert not lag.shedding and lag.next_interval_s() == 0.005
    lag.observe(0.001)
    assert lag.next_interval_s() == 0.05
    unbudgeted = LoopLag(0.0)
    unbudgeted.observe(30.0)  # shedding off: the lag is only a metric
    assert unbudgeted.next_interval_s() == unbudgeted.quiet_s > unbudgeted.interval_s


def test_a_zero_budget_never_sheds() -> None:
    lag = LoopLag(0.0)
    lag.observe(30.0)
    assert not lag.shedding and lag.lag_s == 30.0


def test_the_monitor_task_samples_and_stops_when_cancelled() -> None:
    async def main() -> LoopLag:
        lag = LoopLag(10.0, interval_s=0.001)
        lag.quiet_s = 0.001
        task = asyncio.create_task(lag.run())
        seen: list[float] = []
        lag.on_sample = seen.append
        while len(seen) < 3:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert all(s >= 0 for s in seen)
        return lag

    assert not asyncio.run(main()).shedding


def test_max_queue_ms_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServeSettings().max_queue_ms == 50.0
    monkeypatch.setenv("SEAMLESS_SERVE_MAX_QUEUE_MS", "0")
    assert ServeSettings.from_env().max_queue_ms == 0.0
    with pytest.raises(SeamlessError, match="max_queue_ms"):
        ServeSettings(max_queue_ms=-1)


@pytest.mark.serving
def test_a_lagging_loop_sheds_predictions_with_503_but_probes_answer(
    ws: Path, tmp_path: Path, serve_config: SeamlessConfig
) -> None:
    app = create_app(make_settings(tmp_path, max_queue_ms=50), serve_config)
    with TestClient(app) as client:
        lag = client.app.state.service.lag  # type: ignore[attr-defined]
        assert client.post("/v1/predict", json={"entity_ids": [100000]}).status_code == 200
        # Park the monitor task (its next sleep lasts an hour): the test drives the signal.
        parked = threading.Event()
        report = lag.on_sample
        lag.interval_s = lag.quiet_s = 3600.0

        def park(sample: float) -> None:
            report(sample)
            parked.set()

        lag.on_sample = park
        assert parked.wait(60)
        lag.on_sample = report
        lag.observe(1.5)  # as if the loop ran 1.5 s late, twice in a row
        assert client.post("/v1/predict", json={"entity_ids": [100000]}).status_code == 200
        lag.observe(1.5)
        fast = client.post("/v1/predict", json={"entity_ids": [100000]})
        slow = client.post("/v1/predict", json={"instances": [{}]})  # FastAPI's route
        infer = client.post(
            "/v2/models/credit_risk/infer",
            json={"inputs": [{"name": "customer_id", "shape": [1], "datatype": "INT64",
                              "data": [100000]}]},
        )  # fmt: skip
        for r, key in ((fast, "detail"), (slow, "detail"), (infer, "error")):  # OIP: error
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "2"
            assert "overloaded" in r.json()[key]
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics").text
        assert "seamless_serve_shed_total 3.0" in metrics
        assert "seamless_serve_event_loop_lag_seconds 1.5" in metrics
        assert "seamless_serve_rejected_total 0.0" in metrics
        lag.observe(0.001)  # caught up
        assert client.post("/v1/predict", json={"entity_ids": [100000]}).status_code == 200
