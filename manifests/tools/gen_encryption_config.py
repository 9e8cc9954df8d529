#!/usr/bin/env python3
"""Write the kind API server's EncryptionConfiguration: Secrets encrypted at rest in etcd.

    python manifests/tools/gen_encryption_config.py build/kind/encryption-config.yaml

`make kind-up` runs this before `kind create cluster`; kind-config.yaml mounts the file
into the node and points the API server's `--encryption-provider-config` at it. The file
holds a fresh random 32-byte key for the `secretbox` provider (XSalsa20 + Poly1305),
then `identity`, so Secrets written before encryption was on stay readable. An existing
file is never overwritten (its key encrypts what etcd holds); rotate by adding a new key
first in the list, restarting the API server, rewriting every Secret
(`kubectl get secrets -A -o json | kubectl replace -f -`), then dropping the old key.
The key is never printed; the file is created 0600.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path

import yaml

KEY_NAME = "seamless-1"


def encryption_config(key: bytes) -> dict:
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {
                        "secretbox": {
                            "keys": [{"name": KEY_NAME, "secret": base64.b64encode(key).decode()}]
                        }
                    },
                    {"identity": {}},
                ],
            }
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    target = parser.parse_args().path
    if target.exists():
        print(f"{target}: kept (an existing key encrypts what etcd holds)", file=sys.stderr)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(encryption_config(secrets.token_bytes(32)), sort_keys=False)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    print(f"{target}: written (secretbox key {KEY_NAME}, 0600)", file=sys.stderr)


if __name__ == "__main__":
    main()
