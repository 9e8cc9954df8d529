"""HTTP GET with timeouts and exponential-backoff retries, plus secret masking for display."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from components.common.errors import SeamlessError

log = logging.getLogger(__name__)

# Query parameters whose values are credentials and must never reach logs or manifests.
_SECRET_PARAMS = re.compile(
    r"(pass(word)?|pwd|secret|token|api[_-]?key|key|sig(nature)?|auth|credential)", re.I
)


def mask_url(url: str) -> str:
    """`url` with the password of its user-info and credential-like query values as `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if _SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def with_params(url: str, params: Mapping[str, object]) -> str:
    """`url` with `params` set in its query string (replacing same-named ones)."""
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    pairs += [(k, str(v)) for k, v in params.items()]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def _is_retryable(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


def _reason(exc: BaseException) -> str:
    # requests nests the socket error deep in a long repr; keep only "[Errno N] ...".
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if m:
        return m.group(0).strip()
    return type(exc).__name__


def get_with_retries(
    session: requests.Session,
    url: str,
    *,
    what: str,
    timeout_s: float,
    retries: int,
    backoff_s: float,
) -> requests.Response:
    """GET `url`, retrying timeouts, connection errors, 408/425/429 and 5xx.

    Waits `backoff_s`, then twice that, and so on between attempts. Other 4xx answers
    fail at once (retrying cannot fix them). `what` starts every error message.
    """
    attempts = retries + 1
    last = ""
    shown = mask_url(url)
    for attempt in range(1, attempts + 1):
        try:
            resp = session.get(url, timeout=timeout_s)
        except requests.Timeout:
            last = f"timed out after {timeout_s:g} s"
        except requests.ConnectionError as exc:
            last = f"connection failed: {_reason(exc)}"
        except requests.RequestException as exc:
            raise SeamlessError(f"{what}: cannot request {shown} ({_reason(exc)}).") from None
        else:
            if resp.status_code < 400:
                return resp
            last = f"HTTP {resp.status_code}"
            if not _is_retryable(resp.status_code):
                raise SeamlessError(
                    f"{what}: {shown} answered HTTP {resp.status_code} {resp.reason or ''}".rstrip()
                    + " (not retried)."
                )
        if attempt < attempts:
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning(
                "%s: %s %s; retry %d/%d in %.2f s", what, shown, last, attempt, retries, delay
            )
            time.sleep(delay)
    raise SeamlessError(
        f"{what}: {shown} failed after {attempts} attempt{'s' if attempts > 1 else ''} "
        f"(last: {last})."
    )
