"""Tests for pipeline.net.fetch against real HTTP(S) servers on loopback."""

from __future__ import annotations

import gzip
import ipaddress
import pickle
import ssl
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from httpfaults import (
    FaultHandler,
    FaultServer,
    Route,
    closed_port,
    gzip_bomb,
    silent_listener,
    stall,
    trickle,
)

from pipeline.errors import ConfigError, PermanentError, TransientError
from pipeline.net.fetch import (
    AddressRule,
    FetchBlocked,
    FetchFailed,
    FetchPolicy,
    FetchUnavailable,
    fetch,
    is_public_address,
    parse_retry_after,
    status_reason,
    user_agent,
)

TLS = Path(__file__).parent / "fixtures" / "feeds" / "tls"
# The test servers live on loopback, so most tests must allow private addresses.
LOOPBACK = FetchPolicy(allow_private_networks=True, connect_timeout=2, read_timeout=5, deadline=10)
ONLY_127_0_0_1 = FetchPolicy(
    allowed_networks=("127.0.0.1/32",), connect_timeout=2, read_timeout=5, deadline=10
)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer("127.0.0.1") as srv:
        yield srv


@pytest.fixture
def second_server() -> Iterator[FaultServer]:
    """A server on 127.0.0.2: another loopback address, private like the first."""
    with FaultServer("127.0.0.2") as srv:
        yield srv


def test_plain_get_returns_body_headers_and_user_agent(server: FaultServer) -> None:
    server.routes["/feed"] = lambda h: h.reply(200, b"<rss/>", {"X-Thing": "1"})
    result = fetch(server.url("/feed"), policy=LOOPBACK)
    assert result.status == 200
    assert result.body == b"<rss/>"
    assert result.headers["x-thing"] == "1"
    assert result.content_type == "text/plain"
    assert result.url == result.requested_url == server.url("/feed")
    assert not result.not_modified
    assert result.redirect_chain == ()
    assert 0 < result.elapsed < 5
    sent = server.seen[-1].headers
    assert sent["user-agent"] == LOOPBACK.user_agent
    assert sent["host"] == f"127.0.0.1:{server.port}"
    assert "if-none-match" not in sent


def test_user_agent_names_version_and_contact() -> None:
    assert user_agent("https://example.net/bot").startswith("newsradar/")
    assert user_agent("https://example.net/bot").endswith(" (+https://example.net/bot)")


def test_conditional_get_gets_304_with_validators(server: FaultServer) -> None:
    etag, modified = '"v1"', "Wed, 21 Oct 2015 07:28:00 GMT"

    def route(handler: FaultHandler) -> None:
        if handler.headers.get("If-None-Match") == etag:
            handler.reply(304, b"", {"ETag": etag})
        else:
            handler.reply(200, b"<rss>full</rss>", {"ETag": etag, "Last-Modified": modified})

    server.routes["/feed"] = route
    first = fetch(server.url("/feed"), policy=LOOPBACK)
    assert first.status == 200
    assert first.headers["etag"] == etag
    second = fetch(
        server.url("/feed"),
        policy=LOOPBACK,
        etag=first.headers["etag"],
        last_modified=first.headers["last-modified"],
    )
    assert second.not_modified
    assert second.status == 304
    assert second.body == b""
    sent = server.seen[-1].headers
    assert sent["if-none-match"] == etag
    assert sent["if-modified-since"] == modified


def test_gzip_body_is_decoded(server: FaultServer) -> None:
    payload = b"<rss>" + b"x" * 5000 + b"</rss>"
    server.routes["/gz"] = lambda h: h.reply(
        200, gzip.compress(payload), {"Content-Encoding": "gzip"}
    )
    assert fetch(server.url("/gz"), policy=LOOPBACK).body == payload
    assert "gzip" in server.seen[-1].headers["accept-encoding"]


# --------------------------------------------------------------------------- status outcomes


def test_429_with_delta_seconds_is_transient_with_retry_after(server: FaultServer) -> None:
    server.routes["/busy"] = lambda h: h.reply(429, b"slow down", {"Retry-After": "120"})
    with pytest.raises(FetchUnavailable) as caught:
        fetch(server.url("/busy"), policy=LOOPBACK)
    assert isinstance(caught.value, TransientError)
    assert caught.value.reason == "http_429"
    assert caught.value.status == 429
    assert caught.value.retry_after == 120.0


def test_503_with_http_date_is_transient_with_retry_after(server: FaultServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=300), usegmt=True)
    server.routes["/down"] = lambda h: h.reply(503, b"", {"Retry-After": when})
    with pytest.raises(FetchUnavailable) as caught:
        fetch(server.url("/down"), policy=LOOPBACK)
    assert caught.value.reason == "http_5xx"
    assert caught.value.status == 503
    assert caught.value.retry_after is not None
    assert 290 <= caught.value.retry_after <= 300


def test_500_without_retry_after(server: FaultServer) -> None:
    server.routes["/err"] = lambda h: h.reply(500, b"boom")
    with pytest.raises(FetchUnavailable) as caught:
        fetch(server.url("/err"), policy=LOOPBACK)
    assert (caught.value.reason, caught.value.status, caught.value.retry_after) == (
        "http_5xx",
        500,
        None,
    )


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_4xx_is_permanent_and_keeps_the_status(server: FaultServer, status: int) -> None:
    server.routes["/gone"] = lambda h: h.reply(status, b"no")
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url("/gone"), policy=LOOPBACK)
    assert isinstance(caught.value, PermanentError)
    assert caught.value.reason == "http_4xx"
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),
        ("Wed, 21 Oct 2015 07:20:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


# --------------------------------------------------------------------------- time limits


def test_socket_that_never_answers_times_out_within_the_deadline() -> None:
    policy = FetchPolicy(allow_private_networks=True, read_timeout=30, deadline=1.0)
    with silent_listener() as port:
        started = time.monotonic()
        with pytest.raises(FetchUnavailable) as caught:
            fetch(f"http://127.0.0.1:{port}/feed", policy=policy)
        took = time.monotonic() - started
    assert caught.value.reason == "timeout"
    assert 0.9 <= took < 2.0


def test_server_that_reads_and_never_answers_hits_the_read_timeout(server: FaultServer) -> None:
    server.routes["/stall"] = stall
    policy = FetchPolicy(allow_private_networks=True, read_timeout=0.5, deadline=10)
    started = time.monotonic()
    with pytest.raises(FetchUnavailable) as caught:
        fetch(server.url("/stall"), policy=policy)
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 2.0


def test_trickling_body_is_cut_at_the_deadline(server: FaultServer) -> None:
    # Each byte arrives well within the read timeout; only the total deadline can stop this.
    server.routes["/drip"] = trickle(0.05)
    policy = FetchPolicy(allow_private_networks=True, read_timeout=5, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(FetchUnavailable) as caught:
        fetch(server.url("/drip"), policy=policy)
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 2.0


def test_refused_connection_is_a_connect_outcome() -> None:
    with pytest.raises(FetchUnavailable) as caught:
        fetch(f"http://127.0.0.1:{closed_port()}/", policy=LOOPBACK)
    assert caught.value.reason == "connect"


def test_unresolvable_host_is_a_dns_outcome() -> None:
    with pytest.raises(FetchUnavailable) as caught:
        fetch("http://no-such-host.invalid/feed", policy=LOOPBACK)
    assert caught.value.reason == "dns"


# --------------------------------------------------------------------------- redirects


def test_redirects_are_followed_and_recorded(server: FaultServer) -> None:
    server.routes["/old"] = lambda h: h.redirect("/middle", 301)
    server.routes["/middle"] = lambda h: h.redirect(server.url("/new"), 307)
    server.routes["/new"] = lambda h: h.reply(200, b"here")
    result = fetch(server.url("/old"), policy=LOOPBACK)
    assert result.body == b"here"
    assert result.url == server.url("/new")
    assert result.requested_url == server.url("/old")
    assert result.redirect_chain == (server.url("/old"), server.url("/middle"))


@pytest.mark.parametrize("path", ["/self", "/ping"])
def test_redirect_loop(server: FaultServer, path: str) -> None:
    server.routes["/self"] = lambda h: h.redirect("/self")
    server.routes["/ping"] = lambda h: h.redirect("/pong")
    server.routes["/pong"] = lambda h: h.redirect("/ping")
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url(path), policy=LOOPBACK)
    assert caught.value.reason == "redirect_loop"
    assert len(server.seen) <= 2


def _chain(server: FaultServer, length: int) -> None:
    def hop_to(nxt: int) -> Route:
        return lambda handler: handler.redirect(f"/hop{nxt}")

    for hop in range(length, 0, -1):
        server.routes[f"/hop{hop}"] = hop_to(hop - 1)
    server.routes["/hop0"] = lambda h: h.reply(200, b"end")


def test_too_many_redirects(server: FaultServer) -> None:
    _chain(server, 10)
    policy = FetchPolicy(allow_private_networks=True, max_redirects=3)
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url("/hop10"), policy=policy)
    assert caught.value.reason == "too_many_redirects"
    assert len(server.seen) == 4  # the first request and three followed redirects


def test_exactly_max_redirects_is_allowed(server: FaultServer) -> None:
    _chain(server, 3)
    result = fetch(
        server.url("/hop3"), policy=FetchPolicy(allow_private_networks=True, max_redirects=3)
    )
    assert result.body == b"end"
    assert len(result.redirect_chain) == 3


def test_redirect_with_an_unusable_location_is_an_outcome(server: FaultServer) -> None:
    server.routes["/bad"] = lambda h: h.redirect("http://[::1/broken")
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url("/bad"), policy=LOOPBACK)
    assert caught.value.reason == "bad_redirect"


def test_user_info_is_neither_sent_nor_kept(server: FaultServer) -> None:
    server.routes["/private"] = lambda h: h.reply(200, b"ok")
    result = fetch(f"http://alice:secret@127.0.0.1:{server.port}/private#frag", policy=LOOPBACK)
    assert result.url == server.url("/private")
    assert "authorization" not in server.seen[-1].headers


# --------------------------------------------------------------------------- SSRF guard


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "data:text/plain,hello", "ftp://example.com/x", "gopher://x/", "/rel"],
)
def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(FetchBlocked) as caught:
        fetch(url, policy=LOOPBACK)  # refused even when private networks are allowed
    assert caught.value.reason == "blocked_scheme"


def test_redirect_to_file_url_is_refused(server: FaultServer) -> None:
    server.routes["/evil"] = lambda h: h.redirect("file:///etc/passwd")
    with pytest.raises(FetchBlocked) as caught:
        fetch(server.url("/evil"), policy=LOOPBACK)
    assert caught.value.reason == "blocked_scheme"


def test_redirect_to_127_0_0_2_is_blocked_by_default(
    server: FaultServer, second_server: FaultServer
) -> None:
    second_server.routes["/secret"] = lambda h: h.reply(200, b"internal")
    server.routes["/jump"] = lambda h: h.redirect(second_server.url("/secret"))
    # The first hop is exempted by CIDR, so the check that fires is the one on the redirect.
    with pytest.raises(FetchBlocked) as caught:
        fetch(server.url("/jump"), policy=ONLY_127_0_0_1)
    assert caught.value.reason == "blocked_address"
    assert caught.value.detail == "127.0.0.2"
    assert second_server.seen == []  # never contacted


def test_redirect_to_127_0_0_2_is_followed_when_private_networks_are_allowed(
    server: FaultServer, second_server: FaultServer
) -> None:
    second_server.routes["/secret"] = lambda h: h.reply(200, b"internal")
    server.routes["/jump"] = lambda h: h.redirect(second_server.url("/secret"))
    result = fetch(server.url("/jump"), policy=LOOPBACK)
    assert result.body == b"internal"
    assert result.url == second_server.url("/secret")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.2",
        "localhost",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "2130706433",  # 127.0.0.1 as one integer: resolvers accept it
        "0x7f.1",
        "0.0.0.0",
        "10.0.0.1",
    ],
)
def test_private_addresses_are_blocked_by_default(host: str) -> None:
    started = time.monotonic()
    with pytest.raises(FetchBlocked) as caught:
        fetch(f"http://{host}:{closed_port()}/", policy=FetchPolicy())
    assert caught.value.reason == "blocked_address"
    assert time.monotonic() - started < 1.0  # refused before any connection attempt


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("2002:808:808::1", True),  # 6to4 wrapping a public IPv4
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.5.4", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # CGNAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("192.0.2.10", False),
        ("::1", False),
        ("::", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", False),  # IPv4-mapped: refused outright
        ("::7f00:1", False),  # IPv4-compatible
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 wrapping 10.0.0.1
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_a_bad_cidr_is_a_config_error_when_the_policy_is_built() -> None:
    # Not a plain ValueError from inside some later fetch().
    with pytest.raises(ConfigError, match="not-a-network"):
        FetchPolicy(allowed_networks=("127.0.0.1/32", "not-a-network"))


def test_the_policy_parses_its_address_rule_once() -> None:
    rule = ONLY_127_0_0_1.address_rule
    assert rule == AddressRule(False, (ipaddress.ip_network("127.0.0.1/32"),))
    assert rule.allows("127.0.0.1") and rule.allows("93.184.216.34")
    assert not rule.allows("127.0.0.2") and not rule.allows("::ffff:127.0.0.1")
    assert LOOPBACK.address_rule.allows("10.1.2.3")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (429, "http_429"),
        (500, "http_5xx"),
        (503, "http_5xx"),
        (404, "http_4xx"),
        (410, "http_4xx"),
        (300, "bad_redirect"),
        (302, "bad_redirect"),
        (199, "http_other"),
    ],
)
def test_status_reason(status: int, reason: str) -> None:
    assert status_reason(status) == reason


# --------------------------------------------------------------------------- size cap


def test_gzip_bomb_is_oversize_without_inflating_it(server: FaultServer) -> None:
    bomb = gzip_bomb(50 * 1024 * 1024)
    assert len(bomb) < 200_000
    server.routes["/bomb"] = lambda h: h.reply(200, bomb, {"Content-Encoding": "gzip"})
    policy = FetchPolicy(allow_private_networks=True)  # the default 10 MiB cap
    tracemalloc.start()
    try:
        with pytest.raises(FetchFailed) as caught:
            fetch(server.url("/bomb"), policy=policy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.reason == "oversize"
    assert peak < 25 * 1024 * 1024  # the cap plus buffers, nowhere near 50 MiB


def test_declared_length_over_the_cap_is_refused_early(server: FaultServer) -> None:
    server.routes["/big"] = lambda h: h.reply(200, b"x" * 2048)
    policy = FetchPolicy(allow_private_networks=True, max_bytes=1024)
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url("/big"), policy=policy)
    assert caught.value.reason == "oversize"
    assert "Content-Length" in caught.value.detail


def test_undeclared_length_over_the_cap_is_oversize(server: FaultServer) -> None:
    def route(handler: FaultHandler) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(b"y" * 4096)
        handler.close_connection = True

    server.routes["/stream"] = route
    policy = FetchPolicy(allow_private_networks=True, max_bytes=1024)
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url("/stream"), policy=policy)
    assert caught.value.reason == "oversize"
    small = FetchPolicy(allow_private_networks=True, max_bytes=4096)
    assert fetch(server.url("/stream"), policy=small).body == b"y" * 4096


# --------------------------------------------------------------------------- TLS


def _tls_server(name: str) -> tuple[FaultServer, list[str | None]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / f"{name}.crt", TLS / f"{name}.key")
    sni: list[str | None] = []

    def record(sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: object) -> None:
        sni.append(server_name)

    context.sni_callback = record
    return FaultServer("127.0.0.1", tls=context), sni


def test_https_pins_the_address_and_keeps_host_and_sni() -> None:
    srv, sni = _tls_server("localhost")
    with srv:
        srv.routes["/feed"] = lambda h: h.reply(200, b"secure")
        policy = FetchPolicy(
            allow_private_networks=True, ca_certs=str(TLS / "localhost.crt"), deadline=10
        )
        result = fetch(srv.url("/feed", host="localhost"), policy=policy)
    assert result.body == b"secure"
    assert sni == ["localhost"]  # SNI names the host although we connected to its IP
    assert srv.seen[-1].headers["host"] == f"localhost:{srv.port}"


def test_https_certificate_for_another_name_is_refused() -> None:
    srv, _ = _tls_server("elsewhere")
    with srv:
        srv.routes["/feed"] = lambda h: h.reply(200, b"secure")
        policy = FetchPolicy(
            allow_private_networks=True, ca_certs=str(TLS / "elsewhere.crt"), deadline=10
        )
        with pytest.raises(FetchFailed) as caught:
            fetch(srv.url("/feed", host="localhost"), policy=policy)
    assert caught.value.reason == "tls"
    assert srv.seen == []


# --------------------------------------------------------------------------- errors


def test_errors_pickle_with_their_data() -> None:
    errors: list[FetchFailed | FetchUnavailable] = [
        FetchFailed("http://a.example/", "http_4xx", "Not Found", 404),
        FetchBlocked("http://b.example/", "blocked_address", "10.0.0.1"),
        FetchUnavailable("http://c.example/", "http_429", "", 429, 30.0),
    ]
    for err in errors:
        clone = pickle.loads(pickle.dumps(err))
        assert type(clone) is type(err)
        assert vars(clone) == vars(err)
        assert str(clone) == str(err)
