"""The TLS options of a Feast Redis online store, checked before any client connects.

On the cluster Redis takes TLS only, and every client reads the same connection string
(ConfigMap `feast-repo`): `redis:6379,password=...,ssl=true,ssl_ca_certs=/etc/seamless/ca/ca.crt`.
Feast hands each `key=value` to redis-py, which verifies the certificate and its name
(`ssl_cert_reqs=required`, `ssl_check_hostname=true` are its defaults). Two mistakes
redis-py does not report well are caught here in one sentence: a TLS option without
`ssl=true` (redis-py then silently talks plaintext) and a CA/certificate/key file that
cannot be read (redis-py only fails at the first connection, deep in a traceback).
"""

from __future__ import annotations

import os
from typing import Any

TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def redis_tls_problem(online: Any, where: str = "feature_store.yaml") -> str | None:
    """One sentence naming the `online_store.connection_string` option at fault, or None
    (also for online stores that are not Redis)."""
    if getattr(online, "type", "") != "redis":
        return None
    from feast.infra.online_stores.redis import RedisOnlineStore

    _, params = RedisOnlineStore._parse_connection_string(str(online.connection_string))
    key = f"{where}: online_store.connection_string option"
    if not params.get("ssl"):  # redis-py's test: any truthy value means TLS
        orphan = sorted(k for k in params if k.startswith("ssl_"))
        if orphan:
            return f"{key} {orphan[0]} is set but ssl is not true, so it would be ignored."
        return None
    for option in TLS_FILES:
        path = params.get(option)
        if path is None:
            continue
        if not isinstance(path, str) or not os.path.isfile(path) or not os.access(path, os.R_OK):
            return f"{key} {option} names {path!r}, which is not a readable file."
    return None
