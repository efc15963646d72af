"""`faceatlas names import` speed: rows per second for sheets of 10k and 100k people.

    python benchmarks/bench_import.py [--rows 10000 100000] [--format csv xlsx]

Each size is written once as a sheet (distinct names, a few occupations), then imported into
a fresh SQLite home; the figure is rows/s of ``import_people`` (reading, checks and
database). CI runs it with ``--rows 2000``.

Measured on the 2-core dev machine while shared (load 10–15), CPU seconds in brackets:
before batching, 10k CSV rows took 49.8 s (16.9 s) and 20k 113.6 s (39.1 s), superlinear
(a query, a folder ``LIKE`` scan and a flush per row); after, 10k CSV 2.5 s (1.0 s),
100k CSV 24.2 s (10.3 s), 100k xlsx 15.3 s (14.1 s): linear.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceatlas.names.service import import_people  # noqa: E402
from faceatlas.names.tables import SheetRow, write_people  # noqa: E402
from faceatlas.settings import Settings  # noqa: E402
from faceatlas.store import db  # noqa: E402

FIRST = ["Ana", "Marko", "Jelena", "Nikola", "Milica", "Stefan", "Ivana", "Luka", "Đorđe",
         "Šaban", "Ђорђе", "Милица", "Zoë", "Søren", "Ali", "Hana"]  # fmt: skip
OCCUPATIONS = ["Actor", "Singer", "Athlete", "Writer, Actor", ""]


def _letters(i: int, n: int = 6) -> str:
    """Distinct, scattered letters per ``i`` (a bijection mod 26**6): names that are not
    one letter apart, as real names mostly are not (such pairs are reported, which costs)."""
    x = (i * 2654435761) % 26**n
    return "".join(chr(97 + (x // 26**k) % 26) for k in range(n))


def rows(n: int) -> list[SheetRow]:
    """``n`` distinct people: a first name and a made-up last name."""
    return [SheetRow(FIRST[i % len(FIRST)], f"Petrović{_letters(i)}",
                      OCCUPATIONS[i % len(OCCUPATIONS)]) for i in range(n)]  # fmt: skip


def bench(n: int, suffix: str, tmp: Path) -> tuple[float, float, int, int]:
    sheet = tmp / f"people_{n}{suffix}"
    if not sheet.exists():
        write_people(sheet, rows(n))
    settings = Settings(home=tmp / f"home_{n}_{suffix[1:]}", database_url=None)
    t0, c0 = time.perf_counter(), time.process_time()
    report = import_people(settings, sheet, "Serbia")
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    db.reset_caches()
    return elapsed, cpu, report.created, len(getattr(report, "warnings", ()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000],
                        help="sheet sizes (rows)")  # fmt: skip
    parser.add_argument("--format", nargs="+", default=["csv", "xlsx"], choices=["csv", "xlsx"])
    args = parser.parse_args(argv)
    # CPU seconds too: on a shared machine they move less than the wall clock
    print(f"{'rows':>8} {'format':>6} {'seconds':>8} {'cpu s':>8} {'rows/s':>9} "
          f"{'created':>8} {'warnings':>8}")
    with tempfile.TemporaryDirectory(prefix="faceatlas-bench-import-") as tmp:
        for n in args.rows:
            for fmt in args.format:
                elapsed, cpu, created, warnings = bench(n, f".{fmt}", Path(tmp))
                print(f"{n:>8} {fmt:>6} {elapsed:>8.2f} {cpu:>8.2f} {n / elapsed:>9.0f} "
                      f"{created:>8} {warnings:>8}", flush=True)  # fmt: skip
                if created != n:
                    print(f"  expected {n} people created, got {created}", file=sys.stderr)
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
