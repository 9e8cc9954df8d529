"""Governance: hash-chained audit trail, snapshot store, lineage, access control.

Modules (import the one you need; none reads the environment at import time):

- `audit`: append-only, hash-chained event log (`<workspace>/audit/audit.jsonl`, or a
  PostgreSQL table), `verify()` names the first bad entry.
- `snapshots`: content-addressed, read-only copies of dataset folders
  (`<workspace>/snapshots/<sha256>/`) and the validation reports that judged them.
- `lineage`: the chain source -> snapshot -> validation -> features -> run -> model
  version -> deployments -> monitoring decisions, as text, JSON and OpenLineage events.
- `access`: roles, the permission table and `require(action)`.
- `hooks`: one call per pipeline stage that records what governance needs.
"""
