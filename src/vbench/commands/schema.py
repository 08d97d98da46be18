"""`vbench schema scenario|hosts`: the JSON schema of a scenario or hosts file, for editors (a
YAML language server) and other tools; the same as docs/scenario.schema.json and
docs/hosts.schema.json."""

from __future__ import annotations

import argparse
import sys

from vbench.core.errors import ExitStatus


def cmd_schema(args: argparse.Namespace) -> ExitStatus:
    from vbench.scenario import jsonschema as schemas

    schema = schemas.scenario_schema() if args.kind == "scenario" else schemas.hosts_schema()
    sys.stdout.write(schemas.dump(schema))
    return ExitStatus.SUCCESS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("schema", help="print the JSON schema of a scenario or hosts file",
                        description="Print the JSON schema (draft 2020-12) of a scenario or a "
                                    "hosts file, generated from the models vbench validates them "
                                    "with; docs/*.schema.json are the same.")
    sp.add_argument("kind", choices=("scenario", "hosts"), help="which file's schema")
    sp.set_defaults(func=cmd_schema)
