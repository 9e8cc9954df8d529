"""What each page shows, gathered from the stores as JSON-ready dicts (the `/api/...`
twins return exactly these). A store that cannot be read adds a sentence to `errors`
instead of failing the page; unknown names and ids return None (the route says 404).
"""

from __future__ import annotations

import math
from typing import Any

from components.common.errors import SeamlessError
from components.dashboard import datasets, models, monitoring, runs
from components.dashboard.settings import DashboardSettings
from components.dashboard.stores import Stores, Unavailable, first_line


class Gatherer:
    def __init__(self, stores: Stores, settings: DashboardSettings) -> None:
        self.stores = stores
        self.settings = settings

    def _entries(self, errors: list[str]) -> list[dict[str, Any]]:
        try:
            return self.stores.audit_entries()
        except Unavailable as exc:
            errors.append(str(exc))
            return []

    # ------------------------------------------------------------- pages

    def runs(self, limit: int | None = None) -> dict[str, Any]:
        errors: list[str] = []
        limit = max(1, min(limit or self.settings.runs_limit, 500))
        found = runs.pipeline_runs(
            self._entries(errors), self.stores.logs_dir(), self.stores.kfp_root(), limit
        )
        return {"limit": limit, "runs": [r.to_dict() for r in found], "errors": errors}

    def datasets(self, limit: int = 50) -> dict[str, Any]:
        errors: list[str] = []
        return {
            "datasets": datasets.list_datasets(self._entries(errors), limit),
            "errors": errors,
        }

    def dataset(self, sha: str) -> dict[str, Any] | None:
        errors: list[str] = []
        found = datasets.dataset(self._entries(errors), sha)
        if found is None:
            return None
        problem = None
        profile = None
        try:
            profile = datasets.profile(sha)
        except (SeamlessError, OSError, ValueError) as exc:
            problem = f"The profile of snapshot {sha[:12]} could not be computed: {first_line(exc)}"
        return {"dataset": found, "profile": profile, "profile_problem": problem, "errors": errors}

    def models(self) -> dict[str, Any]:
        errors: list[str] = []
        try:
            found: list[dict[str, Any]] = self.stores.mlflow_call(
                "registered models", lambda c: models.list_models(c), []
            )
        except Unavailable as exc:
            errors.append(str(exc))
            found = []
        return {"models": found, "errors": errors}

    def model(self, name: str) -> dict[str, Any] | None:
        errors: list[str] = []
        entries = self._entries(errors)
        found = self.stores.mlflow_call(
            f"model {name}",
            lambda c: models.model_overview(c, name, entries, self.settings.versions_limit),
            None,
        )
        return None if found is None else {**found, "errors": errors}

    def version(self, name: str, version: str) -> dict[str, Any] | None:
        errors: list[str] = []
        entries = self._entries(errors)
        found = self.stores.mlflow_call(
            f"model {name} version {version}",
            lambda c: models.model_version(c, name, version, entries),
            None,
        )
        return None if found is None else {**found, "errors": errors}

    def overview(self) -> dict[str, Any]:
        listed = self.models()
        errors = list(listed["errors"])
        summary = []
        for m in listed["models"]:
            aliases = {a: m["aliases"].get(a) for a in models.ALIASES}
            holdout: dict[str, Any] = {}
            if aliases["champion"]:
                name, champion = str(m["name"]), str(aliases["champion"])

                def champ(c: Any, name: str = name, champion: str = champion) -> Any:
                    return models.model_version(c, name, champion, [])

                try:
                    v = self.stores.mlflow_call("champion", champ, None)
                except Unavailable as exc:
                    errors.append(str(exc))
                    v = None
                holdout = (v or {}).get("holdout") or {}
            summary.append({"name": m["name"], "aliases": aliases, "champion_holdout": holdout})
        recent = self.runs(5)
        data = self.datasets(5)
        for extra in (recent["errors"], data["errors"]):
            errors += [e for e in extra if e not in errors]
        return {
            "models": summary,
            "runs": recent["runs"],
            "datasets": data["datasets"],
            "errors": errors,
        }

    def monitoring(self, model: str | None) -> dict[str, Any] | None:
        """None when `model` is named but not registered."""
        listed = self.models()
        names = [m["name"] for m in listed["models"]]
        errors = list(listed["errors"])
        if model is not None and model not in names:
            if listed["errors"]:
                return {"model": model, "models": names, "errors": errors}
            return None
        name = model or (names[0] if names else None)
        out: dict[str, Any] = {"model": name, "models": names, "errors": errors}
        if name is None:
            return out
        found: list[dict[str, Any]]
        holdout: dict[str, dict[str, float]]
        try:
            found = self.stores.mlflow_call(
                "monitoring runs",
                lambda c: monitoring.monitoring_runs(c, name, self.settings.monitoring_limit),
                [],
            )
            versions = {str(r["version"]) for r in found if r["version"]}
            holdout = self.stores.mlflow_call(
                "holdout metrics", lambda c: monitoring.holdout_of(c, name, versions), {}
            )
        except Unavailable as exc:
            errors.append(str(exc))
            found, holdout = [], {}
        cleaned = [_finite(r) for r in found]
        out["runs"] = cleaned
        out["features"] = monitoring.features_by_peak(cleaned)
        out["holdout"] = holdout
        out["performance"] = monitoring.performance_series(cleaned, holdout)
        try:
            from components.predictions.summary import summarize

            traffic = summarize(
                self.stores.predictions_source(), name, self.settings.traffic_max_records
            )
            out["traffic"] = traffic.to_dict()
        except (SeamlessError, OSError) as exc:
            errors.append(f"The prediction log could not be read: {first_line(exc)}")
            out["traffic"] = None
        return out

    def audit(self, page: int) -> dict[str, Any] | None:
        """One page of the trail, newest first, and the chain's verification; None when
        the page does not exist."""
        entries = self.stores.audit_entries()
        verified = self.stores.audit_verify()
        size = self.settings.audit_page_size
        pages = max(1, math.ceil(len(entries) / size))
        if not 1 <= page <= pages:
            return None
        end = len(entries) - (page - 1) * size
        shown = list(reversed(entries[max(0, end - size) : end]))
        return {
            "verify": verified.to_dict(),
            "where": self.stores.audit_log().describe(),
            "page": page,
            "pages": pages,
            "total": len(entries),
            "entries": shown,
        }


def _finite(run: dict[str, Any]) -> dict[str, Any]:
    """NaN metrics (a feature PSI could not be computed) as None: JSON has no NaN."""

    def clean(values: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in values.items()
        }

    return {**run, "psi": clean(run["psi"]), "live": clean(run["live"])}
