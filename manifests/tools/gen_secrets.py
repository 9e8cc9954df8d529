#!/usr/bin/env python3
"""Write an overlay's untracked secret files from the keys listed in .env.example.

    python manifests/tools/gen_secrets.py manifests/overlays/kind          # create missing files
    python manifests/tools/gen_secrets.py manifests/overlays/kind --check  # verify, write nothing

`.env.example` (repository root) is split into sections by `# [secrets/<file>]` header
lines; each section becomes `<overlay>/secrets/<file>`, which the overlay's
secretGenerator reads. An overlay's own `secrets.example` (same format, optional) adds
the files only that overlay needs (the object store's keys). An empty value gets a random
one, `${KEY}` in a value is replaced by another key's value, anything else is kept as
written. A `.txt` section is a serving tokens file: each `SERVE_TOKEN_<ROLE>` key becomes
a `<token>:<role>` line.

Existing files are never overwritten (rotate a secret by editing or deleting its file).
Values are never printed. Files are created with mode 0600. Then secrets/alertmanager.yml
is rendered from secrets/alerting.env (render_alertmanager.py): it is derived, so it is
rewritten every time. Last, `secrets/tls/` gets a local CA and one certificate per Service
(gen_certs.py; missing ones only, names include localhost and 127.0.0.1 for NodePorts and
port-forwards).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path

import gen_certs  # same folder
import render_alertmanager

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"
SECTION = re.compile(r"^#\s*\[(secrets/[A-Za-z0-9_.-]+)\]")
ENTRY = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
TOKEN_PREFIX = "SERVE_TOKEN_"
OVERLAY_EXAMPLE = "secrets.example"


def parse_example(path: Path) -> dict[str, dict[str, str]]:
    """Section file -> {key: template value}, in file order."""
    sections: dict[str, dict[str, str]] = {}
    current: str | None = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if m := SECTION.match(line):
            current = m.group(1)
            sections[current] = {}
        elif line and not line.startswith("#"):
            m = ENTRY.match(line)
            if not m:
                raise SystemExit(f"{path}:{n}: expected KEY=VALUE, got {line!r}.")
            if current is None:
                raise SystemExit(f"{path}:{n}: {m.group(1)} is outside any [secrets/...] section.")
            sections[current][m.group(1)] = m.group(2)
    return sections


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if (m := ENTRY.match(line.strip())) is not None:
            out[m.group(1)] = m.group(2)
    return out


def resolve(
    sections: dict[str, dict[str, str]], known: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """Section -> {key: value}. A key means its own section's entry there: two sections may
    hold the same key with different values (each client's MLFLOW_TRACKING_USERNAME, each
    role's database URL). `${KEY}` names the entry in the same section, else the one
    section that defines KEY. `known`: the values in existing files, per section."""
    owners: dict[str, list[str]] = {}
    for sec, keys in sections.items():
        for key in keys:
            owners.setdefault(key, []).append(sec)
    memo: dict[tuple[str, str], str] = {}

    def value(key: str, section: str, seen: tuple[tuple[str, str], ...] = ()) -> str:
        where = owners.get(key, [])
        if section in where:
            sec = section
        elif len(where) == 1:
            sec = where[0]
        else:
            raise SystemExit(
                f".env.example: ${{{key}}} in [{section}] is undefined or defined in "
                f"several sections {where}."
            )
        slot = (sec, key)
        if slot in memo:
            return memo[slot]
        if slot in seen:
            raise SystemExit(f".env.example: ${{{key}}} is circular.")
        template = sections[sec][key]
        if key in known.get(sec, {}):
            result = known[sec][key]
        elif REF.search(template):
            result = REF.sub(lambda m: value(m.group(1), sec, (*seen, slot)), template)
        elif template == "":
            result = secrets.token_hex(24)  # URL- and config-safe
        else:
            result = template
        memo[slot] = result
        return result

    return {sec: {key: value(key, sec) for key in keys} for sec, keys in sections.items()}


def render(name: str, keys: dict[str, str], values: dict[str, str]) -> str:
    if name.endswith(".txt"):
        lines = [
            f"{values[k]}:{k[len(TOKEN_PREFIX) :].lower()}"
            for k in keys
            if k.startswith(TOKEN_PREFIX)
        ]
        return "# token:role[,role] (generated)\n" + "\n".join(lines) + "\n"
    return "".join(f"{k}={values[k]}\n" for k in keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overlay", type=Path, help="overlay folder, e.g. manifests/overlays/kind")
    parser.add_argument("--example", type=Path, default=EXAMPLE)
    parser.add_argument("--check", action="store_true", help="verify the files, write nothing")
    args = parser.parse_args()
    if not (args.overlay / "kustomization.yaml").is_file():
        raise SystemExit(f"{args.overlay}: no kustomization.yaml; pass an overlay folder.")
    sections = parse_example(args.example)
    local = args.overlay / OVERLAY_EXAMPLE
    if local.is_file():
        extra = parse_example(local)
        twice = sorted(set(extra) & set(sections))
        if twice:
            raise SystemExit(f"{local}: sections {twice} are in {args.example.name} already.")
        sections.update(extra)

    missing: list[str] = []
    known: dict[str, dict[str, str]] = {}
    for name, keys in sections.items():
        path = args.overlay / name
        if not path.is_file():
            missing.append(name)
            continue
        if name.endswith(".txt"):
            continue
        have = read_env(path)
        absent = [k for k in keys if not have.get(k)]
        if absent:
            raise SystemExit(f"{path}: missing or empty keys {absent} (see {args.example.name}).")
        known[name] = have

    if args.check:
        if missing:
            raise SystemExit(
                f"{args.overlay}: missing secret files {missing}; "
                f"run: python {Path(__file__).relative_to(ROOT)} {args.overlay}"
            )
        render_alertmanager.check(args.overlay)
        tls = args.overlay / "secrets" / "tls"
        expected = gen_certs.expected_files(list(gen_certs.SERVICES))
        absent = [f for f in expected if not (tls / f).is_file()]
        if absent:
            tool = Path(__file__).relative_to(ROOT)
            raise SystemExit(f"{tls}: missing {absent}; run: python {tool} {args.overlay}")
        print(f"{args.overlay}: all {len(sections)} secret files and the certificates present")
        return

    values = resolve(sections, known)
    for name in missing:
        path = args.overlay / name
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(render(name, sections[name], values[name]))
        print(f"wrote {path}", file=sys.stderr)
    render_alertmanager.write(args.overlay)
    issued = gen_certs.write_certs(args.overlay, list(gen_certs.SERVICES), list(gen_certs.LOOPBACK))
    kept = len(sections) - len(missing)
    print(
        f"{args.overlay}: {len(missing)} secret files written, {kept} kept, "
        f"{len(issued)} certificate files issued"
    )


if __name__ == "__main__":
    main()
