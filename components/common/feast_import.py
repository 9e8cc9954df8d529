"""Import Feast without typeguard's per-class recompilation (a start-up cost, not a check
Seamless relies on).

Feast decorates its classes with typeguard's `@typechecked`, which re-reads, re-parses
and recompiles the whole module's source for every decorated class and function when
Feast is imported: about three quarters of `import feast` (2.4-3.3 s instead of
11.6-13.6 s for `import feast` on a loaded 2-core machine, same run), paid by every step
process that touches Feast. Seamless builds Feast objects only from its own validated
config, so those run-time argument checks guard nothing a user can reach; typeguard
itself makes the decorator a no-op under `python -O` for the same reason.

`skip_feast_typechecks` makes the decorator return Feast's targets unchanged and leaves
typeguard as it is for every other module. It must run before Feast is imported, so the
package's `__init__` calls it. `SEAMLESS_FEAST_TYPECHECKS=1` keeps Feast's checks.
"""

from __future__ import annotations

import functools
import os
from typing import Any

FEAST_TYPECHECKS_ENV = "SEAMLESS_FEAST_TYPECHECKS"


def _is_feast(target: Any) -> bool:
    module = getattr(getattr(target, "__func__", target), "__module__", None) or ""
    return module == "feast" or module.startswith("feast.")


def skip_feast_typechecks() -> bool:
    """Install the Feast-only bypass; True when it is in place (idempotent). A no-op when
    typeguard is not installed or `SEAMLESS_FEAST_TYPECHECKS=1`."""
    if os.environ.get(FEAST_TYPECHECKS_ENV, "").strip() == "1":
        return False
    try:
        import typeguard
    except ImportError:
        return False
    original = typeguard.typechecked
    if getattr(original, "_seamless_feast_bypass", False):
        return True

    @functools.wraps(original)
    def typechecked(target: Any = None, **options: Any) -> Any:
        if target is None:
            return functools.partial(typechecked, **options)
        if _is_feast(target):
            return target
        return original(target, **options)

    typechecked._seamless_feast_bypass = True  # type: ignore[attr-defined]
    typeguard.typechecked = typechecked  # type: ignore[assignment]
    return True
