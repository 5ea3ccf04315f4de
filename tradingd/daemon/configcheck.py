"""``tradingd-config``: check a configuration file and print the values the daemons use.

Apart from :mod:`tradingd.daemon.config` so that the schema never imports the command line
(the CLI builds on the config, not the other way round).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tradingd.daemon.cli import common_parser, config_from_args, run_main
from tradingd.daemon.config import SCHEMA
from tradingd.daemon.schema import DictOf, ListOf, Map, Node


def main(argv: list[str] | None = None) -> None:
    """``tradingd-config [--config FILE]``: check a file, print the values used."""
    parser = common_parser("tradingd-config", "Validate a tradingd configuration file and "
                           "print the values the daemons would use (defaults filled in).")
    parser.add_argument("file", nargs="?", help="the file to check (instead of --config)")
    args = parser.parse_args(argv)
    if args.file:
        args.config = args.file

    def check() -> int:
        config = config_from_args(args)
        print(f"# {config.source_path}: valid")
        # the file's keys only (not what the daemons derive, such as a symbol's resolved
        # path): the output is itself a valid configuration file
        data = _as_schema(SCHEMA, _plain(config))
        data["segment"]["mode"] = f"{config.segment.mode:04o}"
        if config.exec is not None and data.get("exec"):
            data["exec"]["mode"] = f"{config.exec.mode:04o}"
        print(yaml.safe_dump(data, sort_keys=False), end="")
        return 0

    run_main(check, "tradingd-config")


def _plain(value: Any) -> Any:
    """A config dataclass as plain YAML-able data."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _as_schema(node: Node, value: Any) -> Any:
    """``value`` with only the keys ``node`` (the schema) knows, in the schema's order."""
    if isinstance(node, Map) and isinstance(value, Mapping):
        return {k: _as_schema(child, value[k]) for k, child in node.fields.items()
                if k in value}
    if isinstance(node, DictOf) and isinstance(value, Mapping):
        return {k: _as_schema(node.value, v) for k, v in value.items()}
    if isinstance(node, ListOf) and isinstance(value, list):
        return [_as_schema(node.item, v) for v in value]
    return value



if __name__ == "__main__":
    main()
