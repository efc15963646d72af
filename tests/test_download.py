"""The downloader against simweb over real loopback sockets: every fault mode has its reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faceatlas.devtools.simweb import SimWeb
from faceatlas.domain.errors import DownloadError, UnsafeURLError
from faceatlas.sources.download import (
    DownloadItem,
    DownloadOptions,
    DownloadResult,
    download_all_sync,
    inspect_image,
)
from faceatlas.web.guard import CheckedURL, check_url, ip_problem, pinned_target
from tests.simweb_fixtures import faces_dir, simweb_server

IMG = "people/person_01/img1.jpg"
IMG2 = "people/person_02/img26.jpg"


@pytest.fixture(scope="module")
def web() -> Iterator[SimWeb]:
    with simweb_server() as web:
        yield web


def opts(web: SimWeb, **kw: Any) -> DownloadOptions:
    base: dict[str, Any] = {"trusted": {web.netloc}, "retries": 2, "backoff": 0.01,
                            "timeout": 10.0}  # fmt: skip
    return DownloadOptions(**{**base, **kw})


def fetch(web: SimWeb, path: str, fallback: str | None = None, **kw: Any) -> DownloadResult:
    item = DownloadItem("k", web.url + path, web.url + fallback if fallback else None)
    [result] = download_all_sync([item], options=opts(web, **kw))
    return result


def test_good_image_is_downloaded_with_size_hash_and_type(web: SimWeb) -> None:
    r = fetch(web, f"/img/{IMG}")
    raw = (faces_dir() / IMG).read_bytes()
    assert r.ok and r.reason is None
    assert r.content == raw
    assert r.width == 1382 and r.height == 1868
    assert r.content_type == "image/jpeg"
    assert r.final_url == f"{web.url}/img/{IMG}"
    assert len(r.sha256 or "") == 64
    assert [(a.status, a.error) for a in r.attempts] == [(200, None)]
    assert r.attempts[0].bytes == len(raw)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/fault/404/1", "http_404"),
        ("/fault/status/403/1", "http_403"),
        ("/fault/html/1", "not_an_image"),
        ("/fault/tiny/1", "too_small"),
        (f"/fault/truncated/{IMG}", "truncated"),
        ("/fault/oversized/1", "too_large"),
        ("/fault/oversized/2?nolength=1", "too_large"),
        (f"/fault/redirect/6/{IMG}", "too_many_redirects"),
        ("/fault/redirect-private/1", "unsafe_url"),
    ],
)
def test_fault_modes_fail_with_their_reason(web: SimWeb, path: str, reason: str) -> None:
    r = fetch(web, path, max_bytes=8_000_000)
    assert not r.ok
    assert r.reason == reason
    assert r.content is None


def test_4xx_is_not_retried_but_5xx_is(web: SimWeb) -> None:
    r404 = fetch(web, "/fault/404/retry")
    assert [a.status for a in r404.attempts] == [404]
    r500 = fetch(web, "/fault/500/retry", retries=2)
    assert r500.reason == "http_500"
    assert [a.status for a in r500.attempts] == [500, 500, 500]


def test_500_then_ok_recovers(web: SimWeb) -> None:
    r = fetch(web, f"/fault/500-then-ok/recover-1/{IMG}")
    assert r.ok
    assert [a.status for a in r.attempts] == [500, 200]


def test_redirect_chain_of_five_is_followed(web: SimWeb) -> None:
    r = fetch(web, f"/fault/redirect/5/{IMG}")
    assert r.ok
    assert [a.status for a in r.attempts] == [302] * 5 + [200]
    assert r.final_url == f"{web.url}/fault/redirect/0/{IMG}"  # where the image came from
    assert r.content == (faces_dir() / IMG).read_bytes()


def test_oversized_is_aborted_early_not_read_to_the_end(web: SimWeb) -> None:
    r = fetch(web, "/fault/oversized/3?nolength=1", max_bytes=1_000_000)
    assert r.reason == "too_large"
    # Stopped soon after the cap, not after 64 MB.
    assert r.attempts[-1].bytes < 2_000_000


def test_redirect_to_private_address_is_refused_before_connecting(web: SimWeb) -> None:
    r = fetch(web, "/fault/redirect-private/2")
    hop = r.attempts[-1]
    assert hop.url == f"http://127.0.0.1:{web.closed_port}/x"
    assert (hop.status, hop.error, hop.bytes) == (None, "unsafe_url", 0)
    assert r.reason == "unsafe_url"
    assert len(r.attempts) == 2  # the redirect and the refusal; no retries of a refusal
    # Control: with the guard off the same hop is really tried and fails to connect. So the
    # unsafe_url above means the closed port was never connected to.
    off = fetch(web, "/fault/redirect-private/3", allow_private=True, retries=0)
    assert off.reason == "connect_error"
    assert off.attempts[-1].error == "connect_error"


def test_loopback_hit_without_trust_is_refused_and_never_requested(web: SimWeb) -> None:
    web.reset_stats()
    item = DownloadItem(1, f"{web.url}/img/{IMG}?untrusted=1")
    [r] = download_all_sync([item], options=DownloadOptions(retries=0))
    assert r.reason == "unsafe_url"
    assert not any("untrusted" in p for _, p in web.requests)
    # Trust is exact host:port: another loopback port stays refused.
    other = DownloadItem(2, f"http://127.0.0.1:{web.closed_port}/img/{IMG}")
    [r2] = download_all_sync([other], options=opts(web))
    assert r2.reason == "unsafe_url"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "", "http://u:p@x/"])
def test_unsafe_schemes_and_credentials_are_refused(url: str) -> None:
    [r] = download_all_sync([DownloadItem(0, url)], options=DownloadOptions(retries=0))
    assert (r.ok, r.reason) == (False, "unsafe_url")


def test_fallback_to_thumbnail_when_url_fails(web: SimWeb) -> None:
    r = fetch(web, "/fault/404/fb", fallback=f"/thumb/{IMG}")
    assert r.ok
    assert r.final_url == f"{web.url}/thumb/{IMG}"
    assert r.width is not None and max(r.width, r.height or 0) <= 256
    assert [a.status for a in r.attempts] == [404, 200]


def test_reason_is_the_primary_urls_when_fallback_fails_too(web: SimWeb) -> None:
    r = fetch(web, "/fault/html/fb", fallback="/fault/404/fb2")
    assert (r.ok, r.reason) == (False, "not_an_image")
    assert [a.error for a in r.attempts] == ["not_an_image", "http_404"]


def test_timeout_is_a_reason(web: SimWeb) -> None:
    r = fetch(web, f"/fault/slow/3000/{IMG}", timeout=0.5, read_timeout=0.3, retries=0)
    assert r.reason == "timeout"


def test_truncated_file_served_whole_is_truncated(tmp_path: Path) -> None:
    data = (faces_dir() / IMG).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"just some text, named like a photo\n" * 20)
    with simweb_server(photos_dir=tmp_path) as web:
        cut = fetch(web, "/img/cut.jpg")
        junk = fetch(web, "/img/junk.jpg")
    assert cut.reason == "truncated"
    assert cut.attempts[0].status == 200  # the transfer was complete; the file was not
    assert junk.reason == "not_an_image"


def test_results_in_input_order_duplicates_marked_and_progress_called(web: SimWeb) -> None:
    paths = [f"/img/{IMG}", "/fault/404/o", f"/img/{IMG2}", f"/img/{IMG}?copy=1", "/fault/tiny/o"]
    items = [DownloadItem(f"k{i}", web.url + p) for i, p in enumerate(paths)]
    seen: list[str] = []
    results = download_all_sync(items, options=opts(web), progress=lambda r: seen.append(r.key))
    assert [r.key for r in results] == ["k0", "k1", "k2", "k3", "k4"]
    assert [r.ok for r in results] == [True, False, True, True, False]
    assert sorted(seen) == sorted(r.key for r in results)
    assert results[0].duplicate_of is None and results[2].duplicate_of is None
    assert results[3].duplicate_of == "k0"  # same bytes, other URL


def test_concurrency_limits_hold_overall_and_per_host() -> None:
    with simweb_server() as web:  # its own server: no slow leftovers from other tests in flight
        small = "people/person_04/img12.jpg"
        items = [DownloadItem(i, f"{web.url}/fault/slow/150/{small}?n={i}") for i in range(10)]
        results = download_all_sync(items, options=opts(web, per_host=3, concurrency=16))
        assert all(r.ok for r in results)
        assert web.max_inflight == 3
        web.reset_stats()
        download_all_sync(items, options=opts(web, per_host=16, concurrency=5))
        assert web.max_inflight == 5


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(TypeError, match="expected DownloadItem"):
        download_all_sync([("k", "http://x/")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="unknown download option"):
        download_all_sync([], options=DownloadOptions(), concurency=3)
    with pytest.raises(ValueError, match="concurrency"):
        DownloadOptions(concurrency=0)


def test_inspect_image_reasons(tmp_path: Path) -> None:
    png = faces_dir() / "variants" / "32bit.png"
    w, h = inspect_image(png.read_bytes())
    assert w > 64 and h > 64
    with pytest.raises(DownloadError) as exc:
        inspect_image(png.read_bytes(), max_pixels=100)
    assert exc.value.code == "too_large"
    with pytest.raises(DownloadError) as exc:
        inspect_image(b"<html></html>")
    assert exc.value.code == "not_an_image"


def test_empty_input_returns_empty_list() -> None:
    assert download_all_sync([], options=DownloadOptions()) == []


# -- netguard (the SSRF guard the downloader uses); literal IPs only, nothing is resolved


@pytest.mark.parametrize(
    ("ip", "problem"),
    [
        ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
        ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
        ("fc00::1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"),
        ("::", "unspecified"), ("240.0.0.1", "reserved"), ("100.64.0.1", "non-global"),
        ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"), ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)  # fmt: skip
def test_ip_classes(ip: str, problem: str | None) -> None:
    assert ip_problem(ip) == problem


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/", "http://[::1]:8080/x", "https://10.0.0.5/a.jpg",
     "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]/",
     "http://0.0.0.0:80/", "file:///etc/passwd", "gopher://127.0.0.1/", "javascript:alert(1)",
     "http://user:pw@8.8.8.8/", "http://8.8.8.8:99999/", "http:///nohost", "  "],
)  # fmt: skip
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        check_url(url)


def test_check_url_allows_public_literal_and_trusted_exact_host_port() -> None:
    check_url("https://8.8.8.8/photo.jpg")
    check_url("http://127.0.0.1:8123/x", trusted={"127.0.0.1:8123"})
    with pytest.raises(UnsafeURLError, match="loopback"):
        check_url("http://127.0.0.1:8124/x", trusted={"127.0.0.1:8123"})
    check_url("http://127.0.0.1:8124/x", allow_private=True)
    with pytest.raises(UnsafeURLError, match="scheme"):
        check_url("file:///etc/passwd", allow_private=True)  # the switch is about addresses only


def test_checked_dns_name_is_pinned_to_the_checked_address() -> None:
    checked = CheckedURL("https://img.example/a.jpg?x=1", "https", "img.example", 443,
                         "img.example:443", ("8.8.8.8",), False)  # fmt: skip
    url, headers, extensions = pinned_target(checked)
    assert url == "https://8.8.8.8/a.jpg?x=1"
    assert headers == {"Host": "img.example"}
    assert extensions == {"sni_hostname": "img.example"}  # TLS still checks the real name
    literal = CheckedURL("http://8.8.8.8:81/a", "http", "8.8.8.8", 81, "8.8.8.8:81", (), True)
    assert pinned_target(literal) == ("http://8.8.8.8:81/a", {}, {})


@pytest.mark.parametrize("full_decode", [False, True])
def test_jpeg_cut_anywhere_is_truncated(full_decode: bool) -> None:
    data = (faces_dir() / IMG).read_bytes()  # has an EXIF header before the scan
    assert inspect_image(data, full_decode=full_decode) == (1382, 1868)
    for frac in (0.05, 0.5, 0.999):
        with pytest.raises(DownloadError) as exc:
            inspect_image(data[: int(len(data) * frac)], full_decode=full_decode)
        assert exc.value.code == "truncated"
