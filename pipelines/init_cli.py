"""`seamless init`: a commented use-case config for one's own table, then a dry validation.

Register in pipelines/cli.py with `app.command("init")(init_cmd)`. The work is in
pipelines/scaffold/; this module only parses options and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from components.common.errors import SeamlessError
from pipelines.output import stdout_console

if TYPE_CHECKING:
    from pipelines.scaffold import Scaffold


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is inside it."""
    resolved = path.resolve()
    try:
        rel = resolved.relative_to(Path.cwd().resolve())
    except ValueError:
        return str(resolved)
    return str(rel) if str(rel) != "." else "."


def column_lines(plan: Scaffold) -> list[tuple[str, str, str]]:
    """(column, type, why) for every column of the profiled table."""
    from pipelines.scaffold.profile import event_time_why

    keys, label = plan.keys, plan.label
    out: list[tuple[str, str, str]] = []
    for col, p in plan.profiles.items():
        if col == keys.entity:
            kind, why = keys.entity_kind or p.kind, "entity key"
        elif col == keys.timestamp:
            kind, why = "timestamp", event_time_why(p)
        elif col == label.column:
            classes = ", ".join(f"{v!r} ({n:,})" for v, n in label.counts.items())
            kind, why = label.kind, f"label: {classes}"
        else:
            kind, why = p.kind, p.why
            if col in plan.left_out:
                why += f"; {plan.left_out[col]}"
        out.append((col, kind, why))
    return out


def init_cmd(
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="The table: a CSV, Parquet or JSON-lines path or http(s) URL, or a SQLAlchemy "
            "database URL (with --table or --query).",
            show_default=False,
        ),
    ],
    label: Annotated[
        str, typer.Option("--label", help="The column to predict.", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="The config file to write.", show_default=False),
    ],
    positive: Annotated[
        str | None,
        typer.Option(
            "--positive",
            help=(
                "The label value to predict (default: the minority class of a two-valued "
                "label); several, comma-separated (7,8), are one positive class."
            ),
            show_default=False,
        ),
    ] = None,
    entity: Annotated[
        str | None,
        typer.Option(
            "--entity",
            help="Entity id column (default: one named like an id and unique, else a "
            "generated row number).",
            show_default=False,
        ),
    ] = None,
    timestamp: Annotated[
        str | None,
        typer.Option(
            "--timestamp",
            help="Event-time column (default: one named like an event time, else the "
            "ingestion time).",
            show_default=False,
        ),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(
            "--query", help="SQL query giving the table (database URLs).", show_default=False
        ),
    ] = None,
    table: Annotated[
        str | None,
        typer.Option(
            "--table", help="Table name to read whole (database URLs).", show_default=False
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            "-d",
            help="The folder `seamless run training --data-dir` will get: file paths in the "
            "config are relative to it (default: the folder of --out).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Use-case and model name (default: the --out file name).", show_default=False
        ),
    ] = None,
    column_names: Annotated[
        str | None,
        typer.Option(
            "--column-names",
            help="For a CSV file without a header row: its columns in order, comma-separated "
            "(written to the config's column_names).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """Profile a table, write a commented config for it, dry-run ingest + validate.

    Types are inferred conservatively: digits with leading zeros stay text, a
    column with a few unparseable values is typed and those values are listed.
    Every choice is explained in a comment of the config. Exit status: 0 the
    dry validation passed or warned, 1 bad input or a config that does not
    load, 2 the dry validation failed (the config is kept for editing).

    Example: seamless init --from data.csv --label churn --positive yes --out churn.yaml
    Example: seamless init --from sqlite:///shop.db --table customers --label churned -o c.yaml
    """

    console = Console(stderr=True, log_path=False, soft_wrap=True)
    try:
        _init(
            console,
            from_,
            label,
            out,
            positive,
            entity,
            timestamp,
            query,
            table,
            data_dir,
            name,
            force,
            _names(column_names),
        )
    except SeamlessError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None


def _names(text: str | None) -> list[str] | None:
    """`--column-names a,b,c` as a list, checked as the config checks it."""
    if text is None:
        return None
    from pydantic import ValidationError

    from components.common.config import FileSource

    names = [n.strip() for n in text.split(",")]
    try:
        FileSource(uri="-", column_names=names)
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise SeamlessError(f"--column-names: {reason}.") from None
    return names


def _init(
    console: Console,
    from_: str,
    label: str,
    out: Path,
    positive: str | None,
    entity: str | None,
    timestamp: str | None,
    query: str | None,
    table: str | None,
    data_dir: Path | None,
    name: str | None,
    force: bool,
    column_names: list[str] | None,
) -> None:
    from pipelines.scaffold import PASSWORD_VAR, build_scaffold, dry_validate, write_config

    if out.exists() and not force:
        raise SeamlessError(f"--out {out} already exists; pass --force to replace it.")
    base = (data_dir if data_dir is not None else out.resolve().parent).resolve()
    if data_dir is not None and not base.is_dir():
        raise SeamlessError(f"--data-dir {data_dir} is not a folder.")
    with console.status(f"Profiling {from_}"):
        plan = build_scaffold(
            from_,
            label,
            name=name or out.name.split(".")[0],
            data_dir=base,
            positive=positive,
            entity=entity,
            timestamp=timestamp,
            query=query,
            table=table,
            column_names=column_names,
        )
    write_config(out, plan.text, force=force)
    std = stdout_console()
    from components.common.labels import mapped_onto_positive  # pandas: not at CLI start

    mapped = mapped_onto_positive(plan.label.value_map, plan.label.positive)
    positive = f"{plan.label.positive!r}" + "".join(f" (and {k!r})" for k in mapped)
    std.print(
        f"Wrote {_shown(out)}: table '{plan.table}' ({plan.rows:,} rows, "
        f"{len(plan.profiles)} columns), label '{label}' with positive class {positive}, "
        f"{len(plan.features)} features, "
        f"{len(plan.expectations)} starter expectations.",
        highlight=False,
    )
    std.print("Columns (type: why; the config's comments say the same):", highlight=False)
    width = max(len(c) for c in plan.profiles)
    for col, kind, why in column_lines(plan):
        std.print(f"  {col:<{width}}  {kind:<9}  {why}", highlight=False, markup=False)
    for note in (*plan.keys.notes, *plan.label.notes, *plan.source.notes):
        std.print(f"  {note}", highlight=False)

    with console.status("Dry validation: ingest + validate with the written config"):
        try:
            dry = dry_validate(out, base, plan.source.password)
        except SeamlessError as exc:
            std.print(
                f"Dry validation: [bold red]fail[/bold red] at ingest: {exc}", highlight=False
            )
            std.print(
                f"The config is kept in {_shown(out)}: fix it or the data and run init again."
            )
            raise typer.Exit(2) from None
    result = dry.result
    colour = {"pass": "green", "warn": "yellow", "fail": "red"}[result.decision]
    std.print(
        f"Dry validation: [bold {colour}]{result.decision}[/bold {colour}] on {dry.rows:,} rows "
        f"({result.evaluated} checks, {result.failed} failed).",
        highlight=False,
    )
    for table_name, col, count, examples in dry.coerced():
        shown = ", ".join(repr(e) for e in examples)
        std.print(
            f"  coerced: {table_name}.{col}: {count:,} value{'s' if count != 1 else ''} "
            f"became null (e.g. {shown})",
            highlight=False,
        )
    changes = dry.label_changes()
    for key, count in (changes.get("mapped") or {}).items():
        rows = f"{count:,} row" + ("" if count == 1 else "s")
        std.print(f"  label value {key!r} mapped in {rows} (value_map)", highlight=False)
    if changes.get("left_out"):
        std.print(
            f"  {changes['left_out']:,} rows without a label left out of training "
            "(their features kept)",
            highlight=False,
        )
    for sentence in result.failure_sentences():
        std.print(f"  {sentence}", highlight=False)
    if result.decision == "fail":
        std.print(f"The config is kept in {_shown(out)}: fix it or the data and run init again.")
        raise typer.Exit(2)
    config_arg = _shown(out)
    data_arg = _shown(base)
    secret = f"export {PASSWORD_VAR}=...; " if plan.source.password else ""
    std.print("Next:", highlight=False)
    std.print(
        f"  {secret}seamless run training --config {config_arg} --data-dir {data_arg}",
        highlight=False,
    )
    std.print(
        f"  seamless serve --config {config_arg} --no-auth   (--tokens-file FILE beyond a "
        "local try)",
        highlight=False,
    )
