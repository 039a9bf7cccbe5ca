"""The ``featx cache ...`` commands (``ls``, ``info``, ``verify``, ``rm``, ``prune``): thin wrappers
over :mod:`featx.cache`'s maintenance functions (and :func:`featx.extract.cache_verify`, the one
that starts Keras, imported only when rows are re-extracted).
"""

from __future__ import annotations

import os
from pathlib import Path

from featx.cli.common import _EXIT_ERROR, _keras, _print_table
from featx.errors import CommandError
from featx.utils.tables import format_cell

__all__ = ["cmd_cache"]


def cmd_cache(args) -> int:
    from featx import cache
    from featx.utils.config import cache_origin

    if args.action == "ls":
        # first line: where the cache is and what chose it
        where, why = (Path(args.cache_dir), "--cache") if args.cache_dir is not None \
            else cache_origin()
        print(f"cache: {where.expanduser().absolute()} ({why})")
        rows = cache.cache_ls(args.cache_dir)
        if not rows:
            print("(no cache files)")
            return 0
        for r in rows:
            r["rows"] = r.get("n_rows")
            r["size"] = f"{(r.get('bytes') or 0) / 1e6:.2f} MB"
            r["name"] = os.path.basename(r["path"])
        _print_table(rows, ["kind", "name", "backbone", "input_size", "rows", "size"])
        return 0
    if args.action == "info":
        for k, v in cache.cache_info(cache.resolve_entry(args.target, args.cache_dir)).items():
            print(f"{k}: {format_cell(v)}")
        return 0
    if args.action == "verify":
        target = None if args.target is None else cache.resolve_entry(args.target,
                                                                      args.cache_dir)
        n = "all" if args.all else args.sample
        if n == 0 or target is not None and target.is_dir():  # checksums: no Keras needed
            report = cache.cache_check(target, args.cache_dir)  # (a row store: its checksums)
        else:
            _keras(args)
            from featx.extract import cache_verify

            report = cache_verify(target, n=n, cache=args.cache_dir)
        line = f"{'ok' if report else 'FAILED'}: "
        if n != 0 and report.n_checked + len(report.unverifiable):
            line += (f"{report.n_checked} rows checked, max abs diff "
                     f"{report.max_abs_diff:.3g}; ")
        line += f"checksums of {report.n_checksums} rows in {len(report.files)} file(s) checked"
        if report.n_legacy:
            line += f"; {report.n_legacy} rows written before checksums (shapes checked only)"
        print(line + ("" if n else " (--sample N or --all also re-extract and compare)"))
        for path, why in report.failures + report.unverifiable:
            print(f"  {path}: {why}")
        return 0 if report else _EXIT_ERROR
    if args.action == "prune":
        return _cache_prune(args)
    removed = cache.cache_rm(args.target, args.cache_dir, dry_run=args.dry_run)
    if not removed:
        raise CommandError(f"nothing in the cache matches {args.target!r} (see `featx cache ls`)")
    for p in removed:
        print(f"{'would remove' if args.dry_run else 'removed'} {p}")
    if args.dry_run:
        print(f"--dry-run: nothing removed; {len(removed)} cache entry(ies) would go")
    return 0


def _cache_prune(args) -> int:
    import time

    from featx.cache.maintenance import cache_prune, parse_size
    from featx.utils.config import cache_root

    if args.older_than is None and args.max_size is None:
        raise CommandError("featx cache prune needs --older-than DAYS and/or --max-size SIZE "
                           "(e.g. --older-than 30, --max-size 2G)")
    if args.max_size is not None:
        try:
            parse_size(args.max_size)
        except ValueError:
            raise CommandError(f"--max-size must be bytes or a size like 500M, 2G, 1.5GB, got "
                               f"{args.max_size!r}") from None
    units = cache_prune(args.cache_dir, older_than=args.older_than, max_size=args.max_size,
                        dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    now = time.time()
    for u in units:
        print(f"{verb} {u['path']} ({u['bytes'] / 1e6:.2f} MB, last used "
              f"{(now - u['last_used']) / 86400:.1f} days ago)")
    freed = sum(u["bytes"] for u in units) / 1e6
    print(f"{'--dry-run: nothing removed; ' if args.dry_run else ''}{len(units)} file(s), "
          f"{freed:.2f} MB {'would be ' if args.dry_run else ''}freed in "
          f"{cache_root(args.cache_dir)}")
    return 0
