"""HTTP GET with timeouts, a deadline, a decoded-size cap, conditional GET and an SSRF guard."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import urllib3
import w3lib.url
from urllib3.exceptions import (
    DecodeError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.response import BaseHTTPResponse

from pipeline.errors import ConfigError, PermanentError, TransientError
from pipeline.net.deadline import Watchdog, WatchedHTTPPool, WatchedHTTPSPool

__all__ = [
    "DEFAULT_CONTACT_URL",
    "AddressRule",
    "FetchBlocked",
    "FetchFailed",
    "FetchPolicy",
    "FetchResult",
    "FetchUnavailable",
    "fetch",
    "is_public_address",
    "parse_retry_after",
    "status_reason",
    "user_agent",
]

DEFAULT_CONTACT_URL = "https://example.org/newsradar-contact"
_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# NAT64 prefixes (well-known and local-use) carry an IPv4 address that a NAT64 gateway reaches.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _package_version() -> str:
    try:
        return _dist_version("newsradar")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0"


def user_agent(contact_url: str = DEFAULT_CONTACT_URL) -> str:
    """The User-Agent we announce: ``newsradar/<version> (+<contact URL>)``."""
    return f"newsradar/{_package_version()} (+{contact_url})"


_DEFAULT_USER_AGENT = user_agent()


# --------------------------------------------------------------------------- errors


class FetchFailed(PermanentError):
    """A fetch that a retry will not fix; ``reason`` becomes the URL's recorded outcome.

    Reasons: ``bad_url``, ``oversize``, ``redirect_loop``, ``too_many_redirects``,
    ``bad_redirect``, ``tls``, ``decode``, ``http_4xx`` and ``http_other`` (``status`` kept).
    """

    def __init__(self, url: str, reason: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(url, reason, detail, status)
        self.url = url
        self.reason = reason
        self.detail = detail
        self.status = status

    def __str__(self) -> str:
        code = f" {self.status}" if self.status is not None else ""
        tail = f" ({self.detail})" if self.detail else ""
        return f"{self.url}: {self.reason}{code}{tail}"


class FetchBlocked(FetchFailed):
    """The SSRF guard refused the URL: ``blocked_scheme`` or ``blocked_address``."""


class FetchUnavailable(TransientError):
    """A fetch that may succeed later; ``retry_after`` (seconds) comes from Retry-After.

    Reasons: ``dns``, ``timeout``, ``connect``, ``protocol``, ``http_5xx``, ``http_429``.
    """

    def __init__(
        self,
        url: str,
        reason: str,
        detail: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(url, reason, detail, status, retry_after)
        self.url = url
        self.reason = reason
        self.detail = detail
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        code = f" {self.status}" if self.status is not None else ""
        tail = f" ({self.detail})" if self.detail else ""
        wait = f", retry after {self.retry_after:.0f}s" if self.retry_after is not None else ""
        return f"{self.url}: {self.reason}{code}{tail}{wait}"


# --------------------------------------------------------------------------- policy and result


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for one fetch; build it from Settings at the entry point."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    deadline: float = 60.0  # seconds for the whole fetch, redirects and body included
    max_bytes: int = 10 * 1024 * 1024  # of the decoded body, so compression cannot hide size
    max_redirects: int = 5
    user_agent: str = _DEFAULT_USER_AGENT
    allow_private_networks: bool = False  # tests and the local demo site only
    # Narrower than allow_private_networks: CIDRs (e.g. "127.0.0.1/32") exempt from the rule.
    allowed_networks: tuple[str, ...] = ()
    ca_certs: str | None = None  # a CA bundle path; None uses the system store
    address_rule: AddressRule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Parsed once, here: a bad CIDR is a configuration error, not a failure of some fetch.
        rule = AddressRule.parse(
            self.allow_private_networks, self.allowed_networks, where="fetch policy"
        )
        object.__setattr__(self, "address_rule", rule)


@dataclass(frozen=True)
class FetchResult:
    """A final response: 2xx with its body, or 304 (``not_modified``, empty body)."""

    url: str  # the final URL, after redirects
    requested_url: str
    status: int
    headers: dict[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes
    not_modified: bool
    redirect_chain: tuple[str, ...]  # every URL that answered with a redirect, in order
    elapsed: float  # seconds

    @property
    def content_type(self) -> str | None:
        """The Content-Type header, if any."""
        return self.headers.get("content-type")


# --------------------------------------------------------------------------- address guard


def is_public_address(address: str) -> bool:
    """True if an IP address is globally routable and safe to fetch from (the SSRF rule).

    Refuses loopback, private, link-local, multicast, reserved, unspecified, CGNAT, IPv6
    site-local, IPv4-mapped and -compatible IPv6, and 6to4/Teredo/NAT64 wrapping a refused IPv4.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None or int(ip) >> 32 == 0:
            return False  # ::ffff:a.b.c.d and ::a.b.c.d reach IPv4 hosts directly
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and any(ip in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
        if ip.is_site_local:
            return False
    elif ip in _CGNAT:
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AddressRule:
    """The SSRF rule: public addresses only, unless private networks (or some CIDRs) are let in.

    The one rule for pipeline.net.fetch and for the crawl's resolver and SSRF middleware.
    """

    allow_private_networks: bool = False
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def parse(
        cls, allow_private_networks: bool, cidrs: Iterable[str], *, where: str
    ) -> AddressRule:
        """The rule for CIDR strings; a ConfigError (from ``where``) names a bad one."""
        networks: list[Network] = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError as exc:
                raise ConfigError(where, "allowed_networks", f"{cidr!r}: {exc}") from None
        return cls(allow_private_networks, tuple(networks))

    def allows(self, address: str) -> bool:
        """True if a connection to this IP address may be made."""
        if self.allow_private_networks or is_public_address(address):
            return True
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        return any(ip in network for network in self.allowed_networks)


def status_reason(status: int) -> str:
    """The outcome for a final response that is neither a 2xx nor a 304."""
    if status == 429:
        return "http_429"
    if status >= 500:
        return "http_5xx"
    if status >= 400:
        return "http_4xx"
    if 300 <= status < 400:
        return "bad_redirect"  # a redirect that was not followed: no or unusable Location
    return "http_other"


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means "-0000"
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --------------------------------------------------------------------------- fetch


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # IDNA-encoded, no brackets
    port: int
    host_header: str
    path: str


def _target(url: str) -> _Target:
    """Split and check one hop's URL: http(s) only, a host, a valid port."""
    try:
        raw = urlsplit(url.strip())
    except ValueError as err:
        raise FetchFailed(url, "bad_url", str(err)) from err
    scheme = raw.scheme.lower()
    if scheme not in _SCHEMES:
        raise FetchBlocked(url, "blocked_scheme", scheme or "(none)")
    try:
        # percent-encodes spaces and non-ASCII, IDNA-encodes the host
        safe = w3lib.url.safe_url_string(url.strip())
        parts: SplitResult = urlsplit(safe)
        port = parts.port or _DEFAULT_PORTS[scheme]
    except (ValueError, UnicodeError) as err:
        raise FetchFailed(url, "bad_url", str(err)) from err
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FetchFailed(url, "bad_url", "no host")
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == _DEFAULT_PORTS[scheme] else f"{bracketed}:{port}"
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    # Rebuilt from the host header's spelling: no user info, no default port, no fragment.
    final = urlunsplit((scheme, host_header, parts.path or "/", parts.query, ""))
    return _Target(final, scheme, host, port, host_header, path)


def _resolve(target: _Target, policy: FetchPolicy) -> list[str]:
    """Resolve the host and apply the address rule to every answer.

    getaddrinfo has no timeout of its own; the resolver's (resolv.conf) bounds it.
    """
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise FetchUnavailable(target.url, "dns", str(err)) from err
    except UnicodeError as err:
        raise FetchFailed(target.url, "bad_url", str(err)) from err
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchUnavailable(target.url, "dns", "no address")
    # One refused answer refuses the host: a name that mixes public and private answers
    # is an attack, not a configuration.
    for address in addresses:
        if not policy.address_rule.allows(address):
            raise FetchBlocked(target.url, "blocked_address", address)
    return addresses


def _request(
    manager: urllib3.PoolManager,
    watchdog: Watchdog,
    target: _Target,
    address: str,
    headers: dict[str, str],
    policy: FetchPolicy,
    deadline: float,
) -> BaseHTTPResponse:
    """One GET to the pinned address, with Host and SNI naming the real host."""
    pool_kwargs: dict[str, object] = {}
    if target.scheme == "https":
        # Connect to the checked IP, but present and verify the certificate for the host name.
        pool_kwargs = {"server_hostname": target.host, "assert_hostname": target.host}
    pool = manager.connection_from_host(
        address.split("%", 1)[0], target.port, target.scheme, pool_kwargs=pool_kwargs
    )
    if isinstance(pool, WatchedHTTPPool | WatchedHTTPSPool):
        pool.watchdog = watchdog
    remaining = max(deadline - time.monotonic(), 0.001)
    timeout = urllib3.Timeout(
        connect=min(policy.connect_timeout, remaining), read=min(policy.read_timeout, remaining)
    )
    return pool.urlopen(
        "GET",
        target.path,
        headers={"Host": target.host_header, **headers},
        redirect=False,
        retries=False,
        preload_content=False,
        decode_content=True,
        assert_same_host=False,
        timeout=timeout,
    )


def _open(
    manager: urllib3.PoolManager,
    watchdog: Watchdog,
    target: _Target,
    addresses: list[str],
    headers: dict[str, str],
    policy: FetchPolicy,
    deadline: float,
) -> BaseHTTPResponse:
    """Try each checked address in turn until one accepts the connection."""
    last: NewConnectionError | None = None
    for address in addresses:
        try:
            return _request(manager, watchdog, target, address, headers, policy, deadline)
        except NewConnectionError as err:  # refused or unreachable: the next address may answer
            last = err
            if time.monotonic() >= deadline:
                break
    assert last is not None  # addresses is never empty
    raise last


def _read_body(
    resp: BaseHTTPResponse, url: str, policy: FetchPolicy, deadline: float, watchdog: Watchdog
) -> bytes:
    """Stream the decoded body, stopping as soon as it passes the cap or the deadline."""
    length = resp.headers.get("content-length")
    encoded = resp.headers.get("content-encoding", "identity").lower() not in ("", "identity")
    if length is not None and length.isdigit() and not encoded and int(length) > policy.max_bytes:
        raise FetchFailed(url, "oversize", f"Content-Length {length}")
    body = bytearray()
    # urllib3 >= 2.6 decompresses at most ``amt`` bytes per read, so a gzip bomb is stopped
    # after one chunk over the cap instead of being inflated whole.
    for chunk in resp.stream(_CHUNK, decode_content=True):
        body += chunk
        if len(body) > policy.max_bytes:
            raise FetchFailed(url, "oversize", f"more than {policy.max_bytes} bytes decoded")
        if time.monotonic() > deadline:
            raise FetchUnavailable(url, "timeout", "deadline passed while reading the body")
    if watchdog.fired:  # without a Content-Length, the shut-down socket looks like a clean end
        raise FetchUnavailable(url, "timeout", "deadline passed while reading the body")
    return bytes(body)


def _status_error(url: str, resp: BaseHTTPResponse) -> FetchFailed | FetchUnavailable:
    status = resp.status
    reason = status_reason(status)
    if reason in ("http_429", "http_5xx"):
        wait = parse_retry_after(resp.headers.get("retry-after"), now=datetime.now(UTC))
        return FetchUnavailable(url, reason, resp.reason or "", status, wait)
    if reason == "bad_redirect":
        return FetchFailed(url, reason, "redirect without a Location", status)
    return FetchFailed(url, reason, resp.reason or "", status)


def _translate(
    err: HTTPError | OSError, url: str, watchdog: Watchdog
) -> FetchFailed | FetchUnavailable:
    """Map urllib3's and the socket layer's errors to our outcomes."""
    if watchdog.fired:
        return FetchUnavailable(url, "timeout", "deadline passed")
    if isinstance(err, NewConnectionError):  # before TimeoutError: it subclasses it
        return FetchUnavailable(url, "connect", str(err))
    if isinstance(err, Urllib3Timeout | socket.timeout):
        return FetchUnavailable(url, "timeout", str(err))
    if isinstance(err, SSLError):
        return FetchFailed(url, "tls", str(err))
    if isinstance(err, DecodeError):
        return FetchFailed(url, "decode", str(err))
    if isinstance(err, ProtocolError):
        return FetchUnavailable(url, "protocol", str(err))
    return FetchUnavailable(url, "connect", str(err))


def fetch(
    url: str,
    *,
    policy: FetchPolicy,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    """GET ``url`` under ``policy``; raise FetchFailed/FetchBlocked/FetchUnavailable otherwise.

    Redirects are followed here, one hop at a time, and every hop is checked by the SSRF
    guard and connected to the very address that was checked (no DNS-rebinding window).
    """
    started = time.monotonic()
    deadline = started + policy.deadline
    headers = {
        "User-Agent": policy.user_agent,
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    manager = urllib3.PoolManager(num_pools=4, cert_reqs="CERT_REQUIRED", ca_certs=policy.ca_certs)
    manager.pool_classes_by_scheme = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}
    watchdog = Watchdog(policy.deadline)
    chain: list[str] = []
    current = url
    try:
        while True:
            target = _target(current)
            if target.url in chain:
                raise FetchFailed(target.url, "redirect_loop", f"{chain[-1]} -> {target.url}")
            addresses = _resolve(target, policy)
            try:
                resp = _open(manager, watchdog, target, addresses, headers, policy, deadline)
                try:
                    location = resp.headers.get("location")
                    if resp.status in _REDIRECTS and location:
                        chain.append(target.url)
                        if len(chain) > policy.max_redirects:
                            detail = f"more than {policy.max_redirects}"
                            raise FetchFailed(target.url, "too_many_redirects", detail)
                        current = _redirect_target(target.url, location)
                        continue
                    if resp.status == 304:
                        body = b""
                    elif 200 <= resp.status < 300:
                        body = _read_body(resp, target.url, policy, deadline, watchdog)
                    else:
                        raise _status_error(target.url, resp)
                    return FetchResult(
                        url=target.url,
                        requested_url=url,
                        status=resp.status,
                        headers={name.lower(): resp.headers[name] for name in resp.headers},
                        body=body,
                        not_modified=resp.status == 304,
                        redirect_chain=tuple(chain),
                        elapsed=time.monotonic() - started,
                    )
                finally:
                    resp.close()  # never drain: the rest of an oversize body stays unread
            except (HTTPError, OSError) as err:
                raise _translate(err, target.url, watchdog) from err
    finally:
        watchdog.cancel()
        manager.clear()


def _redirect_target(current: str, location: str) -> str:
    """The absolute URL a Location header points to."""
    try:
        return urljoin(current, location.strip())
    except ValueError as err:  # e.g. an unbalanced IPv6 bracket
        raise FetchFailed(current, "bad_redirect", f"Location {location!r}") from err
