"""`seamless init`: profile one table and write a commented use-case config for it.

Plain functions, each unit-testable on a DataFrame: `read_table` (the same readers as
ingest), `profile_table` (a type per column, inferred conservatively), `plan_keys` and
`plan_label` (entity, event time, label classes), `starter_expectations` (a suite from
the profile), `render_config` (YAML text with a comment on every inferred choice) and
`dry_validate` (ingest + validate with the written config in a temporary folder).

Types are judged with ingest's own converters (components/ingest/normalize.py), so
"9,981 of 10,000 values parse as integers" is exactly what ingest will keep.
"""

from pipelines.scaffold.common import PASSWORD_VAR
from pipelines.scaffold.dryrun import DryRun, dry_validate
from pipelines.scaffold.expectations import (
    Expectation,
    null_budget,
    starter_expectations,
    widened_range,
)
from pipelines.scaffold.keys import KeysPlan, plan_keys
from pipelines.scaffold.label import LabelPlan, plan_label
from pipelines.scaffold.profile import ColumnProfile, infer_column, profile_table
from pipelines.scaffold.render import (
    Scaffold,
    _y,
    build_scaffold,
    choose_features,
    render_config,
    write_config,
)
from pipelines.scaffold.source import SourcePlan, plan_source, read_table

__all__ = [
    "PASSWORD_VAR",
    "ColumnProfile",
    "DryRun",
    "Expectation",
    "KeysPlan",
    "LabelPlan",
    "Scaffold",
    "SourcePlan",
    "_y",
    "build_scaffold",
    "choose_features",
    "dry_validate",
    "infer_column",
    "null_budget",
    "plan_keys",
    "plan_label",
    "plan_source",
    "profile_table",
    "read_table",
    "render_config",
    "starter_expectations",
    "widened_range",
    "write_config",
]
