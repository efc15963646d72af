"""SSRF guard: refuse URLs that would make us fetch from our own machine or private networks.

Image URLs come from a third-party search API, i.e. from anyone on the web. Without this guard a
search hit (or a redirect from one) could point the downloader at a cloud metadata endpoint, a
database admin page on the LAN, or a service on localhost.

``check_url`` resolves the host and refuses it if *any* address is non-public (an attacker can
publish one public and one private A record). ``resolve_url`` does the same and returns the
checked addresses so the caller can connect to exactly those (see ``pinned_target``), which
closes the DNS-rebinding gap between the check and the connect.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from faceatlas.domain.errors import DownloadError, UnsafeURLError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed the guard, with what was checked."""

    url: str
    scheme: str
    host: str  # lower-case, IPv6 without brackets
    port: int
    netloc_key: str  # "host:port" ("[v6]:port"), the form used in ``trusted``
    addresses: tuple[str, ...]  # checked addresses; empty when trusted or private allowed
    is_literal: bool  # the host is an IP literal (nothing to resolve, nothing to pin)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 is the last 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: where the IPv4 sits varies
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d


def embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries to (kind, address), or ``None``.

    IPv4-mapped (``::ffff:127.0.0.1``) and IPv4-compatible (``::127.0.0.1``) addresses reach
    the IPv4 host on dual-stack sockets; 6to4 (``2002:7f00:1::``), Teredo (``2001:0::/32``,
    the client address) and NAT64 (``64:ff9b::7f00:1``) reach it through a relay or
    translator. Each must be judged by the IPv4 inside, or ``127.0.0.1`` and
    ``169.254.169.254`` get through in an IPv6 spelling.
    """
    if addr.ipv4_mapped is not None:
        return "IPv4-mapped", addr.ipv4_mapped
    if addr.sixtofour is not None:
        return "6to4", addr.sixtofour
    if addr.teredo is not None:
        return "Teredo", addr.teredo[1]
    if addr in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in _IPV4_COMPATIBLE and int(addr) > 1:  # not :: or ::1, judged as themselves
        return "IPv4-compatible", ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def ip_problem(ip: str | IPAddress) -> str | None:
    """Why this address must not be fetched from, or ``None`` for a public address."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr in _NAT64_LOCAL:
            return "local-use NAT64"
        inner = embedded_ipv4(addr)
        if inner is not None:
            kind, v4 = inner
            problem = ip_problem(v4)
            if kind == "IPv4-mapped":
                return problem  # the very same host as the IPv4 it maps
            if problem:
                return f"{problem} IPv4 {v4} inside a {kind}"
    checks = (
        ("unspecified", addr.is_unspecified),
        ("loopback", addr.is_loopback),
        ("link-local", addr.is_link_local),
        ("multicast", addr.is_multicast),
        ("reserved", addr.is_reserved),
        ("private", addr.is_private),
    )
    for name, hit in checks:
        if hit:
            return name
    if not addr.is_global:
        # e.g. 100.64.0.0/10 (carrier-grade NAT): neither "private" nor reachable publicly.
        return "non-global"
    return None


def netloc_key(host: str, port: int) -> str:
    """The ``host:port`` spelling used for the ``trusted`` set (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse(url: str) -> tuple[SplitResult, str, int]:
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURLError("empty URL")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"malformed URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeURLError(f"scheme {scheme or '(none)'!r} refused: only http and https")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError("credentials in URLs are refused")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UnsafeURLError(f"URL without a host: {url!r}")
    return parts, host, port if port is not None else _DEFAULT_PORTS[scheme]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve_url(
    url: str, *, allow_private: bool = False, trusted: Collection[str] = ()
) -> CheckedURL:
    """Check ``url`` like :func:`check_url` and return what was checked.

    Raises UnsafeURLError when refused, DownloadError(code="connect_error") when the host
    does not resolve (that is a dead link, not an attack).
    """
    parts, host, port = _parse(url)
    key = netloc_key(host, port)
    literal = _literal(host)
    checked = CheckedURL(url, parts.scheme.lower(), host, port, key, (), literal is not None)
    if key in trusted or allow_private:
        return checked
    if literal is not None:
        addresses: list[str] = [str(literal)]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError) as exc:
            msg = f"cannot resolve host {host!r}: {exc}"
            raise DownloadError(msg, code="connect_error") from None
        addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
        if not addresses:
            raise DownloadError(f"host {host!r} has no address", code="connect_error")
    for address in addresses:
        problem = ip_problem(address)
        if problem:
            raise UnsafeURLError(
                f"refused {key}: resolves to a {problem} address ({address}); "
                "fetching from local or private networks is not allowed"
            )
    return CheckedURL(url, checked.scheme, host, port, key, tuple(addresses), checked.is_literal)


def check_url(url: str, *, allow_private: bool = False, trusted: Collection[str] = ()) -> None:
    """Raise UnsafeURLError unless ``url`` is http(s), without credentials, and every address
    its host resolves to is public. ``trusted`` holds exact ``host:port`` strings let through
    unchecked (tests trust the simweb address); ``allow_private`` turns the address check off."""
    resolve_url(url, allow_private=allow_private, trusted=trusted)


def pinned_target(checked: CheckedURL) -> tuple[str, dict[str, str], dict[str, str]]:
    """URL, extra headers and httpx request extensions that connect to the checked address.

    For a DNS name that was checked, the request goes to the first checked IP with the
    original ``Host`` header and TLS SNI/cert name (httpx ``sni_hostname`` extension), so a
    second DNS answer cannot swap in a private address. Literals, trusted hosts and
    ``allow_private`` runs are returned unchanged.
    """
    if checked.is_literal or not checked.addresses:
        return checked.url, {}, {}
    parts = urlsplit(checked.url)
    ip = checked.addresses[0]
    ip_host = f"[{ip}]" if ":" in ip else ip
    default = _DEFAULT_PORTS[checked.scheme]
    netloc = ip_host if checked.port == default else f"{ip_host}:{checked.port}"
    host_header = checked.host if checked.port == default else f"{checked.host}:{checked.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    extensions = {"sni_hostname": checked.host} if checked.scheme == "https" else {}
    return url, {"Host": host_header}, extensions
