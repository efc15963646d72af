"""Concurrent downloader vs one-at-a-time, against simweb hosts with per-image latency.

    FACEATLAS_TESTDATA=../shared/testdata python benchmarks/bench_download.py [--n 70]
        [--latency-ms 100] [--hosts 4] [--concurrency 16] [--per-host 4]

simweb runs in separate processes (``--hosts`` of them, so ``--per-host`` politeness applies
as it would across real image hosts, and the servers do not share our GIL). The same client
code runs both ways; "sequential" is concurrency 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faceatlas.devtools.testdata import faces_dir  # noqa: E402
from faceatlas.domain.errors import ConfigError  # noqa: E402
from faceatlas.sources.download import DownloadItem, DownloadOptions, download_all_sync  # noqa: E402


def photos_dir() -> Path:
    try:
        return faces_dir()
    except ConfigError as exc:
        sys.exit(str(exc))


def start_simweb(people: Path, photos: Path, latency_ms: float) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "faceatlas.devtools.simweb", "--people", str(people),
         "--photos", str(photos), "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " at " not in line:
        proc.kill()
        sys.exit(f"simweb did not start: {line!r}")
    return proc, line.split(" at ")[1].split()[0]


def run(items: list[DownloadItem], opts: DownloadOptions) -> tuple[float, int]:
    t0 = time.perf_counter()
    results = download_all_sync(items, options=opts)
    return time.perf_counter() - t0, sum(r.ok for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=70, help="images to download")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="added per image")
    parser.add_argument("--hosts", type=int, default=4, help="simweb processes (image hosts)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--per-host", type=int, default=4)
    args = parser.parse_args(argv)
    if args.n < 1 or args.hosts < 1:
        parser.error("--n and --hosts must be at least 1")

    photos = photos_dir()
    files = sorted(p.relative_to(photos).as_posix() for p in (photos / "people").rglob("*.jp*g"))
    with tempfile.TemporaryDirectory() as tmp:
        people = Path(tmp) / "people.json"
        people.write_text('{"people": []}', encoding="utf-8")
        servers = [start_simweb(people, photos, args.latency_ms) for _ in range(args.hosts)]
        try:
            urls = [s[1] for s in servers]
            trusted = {u.removeprefix("http://") for u in urls}
            items = [DownloadItem(i, f"{urls[i % len(urls)]}/img/{files[i % len(files)]}?n={i}")
                     for i in range(args.n)]  # fmt: skip
            base = DownloadOptions(trusted=frozenset(trusted), retries=0)
            run(items[:2], base)  # warm-up: imports, page cache
            seq_s, seq_ok = run(items, base.with_(concurrency=1, per_host=1))
            con_s, con_ok = run(items, base.with_(concurrency=args.concurrency,
                                                  per_host=args.per_host))  # fmt: skip
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait(timeout=10)
    print(f"{args.n} images, {args.latency_ms:g} ms latency each, {args.hosts} hosts")
    print(f"sequential (concurrency 1):             {seq_s:7.2f} s  {args.n / seq_s:7.1f} img/s"
          f"  ok {seq_ok}")
    print(f"concurrent ({args.concurrency} total, {args.per_host} per host): {con_s:7.2f} s"
          f"  {args.n / con_s:7.1f} img/s  ok {con_ok}")
    print(f"speed-up: {seq_s / con_s:.1f}x (goal >= 8x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
