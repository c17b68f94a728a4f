"""Tests for pipeline.net.urls: canonical URLs, AMP mapping, declared canonicals, document ids."""

from __future__ import annotations

import hashlib
import pickle

import pytest

from pipeline.errors import PermanentError
from pipeline.net.urls import (
    UnsupportedURL,
    absolute_http,
    amp_to_canonical,
    canonicalize_url,
    choose_canonical,
    registered_site,
    url_id,
)

CANONICAL_CASES = [
    # scheme and host case, default port, fragment
    ("HTTP://WWW.Example.COM:80/News/Story#comments", "http://www.example.com/News/Story"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("http://example.com:443/a", "http://example.com:443/a"),
    # IDNA host
    ("https://münchen.de/straße", "https://xn--mnchen-3ya.de/stra%C3%9Fe"),
    ("https://XN--MNCHEN-3YA.de/", "https://xn--mnchen-3ya.de/"),
    # tracking parameters, any case, percent-encoded names, repeated
    (
        "https://example.com/a?utm_source=rss&utm_medium=feed&UTM_Campaign=x&id=5",
        "https://example.com/a?id=5",
    ),
    (
        "https://example.com/a?fbclid=IwAR0&gclid=Cj0&dclid=1&gbraid=2&wbraid=3",
        "https://example.com/a",
    ),
    (
        "https://example.com/a?yclid=1&msclkid=2&mc_cid=3&mc_eid=4&_ga=5&_gl=6",
        "https://example.com/a",
    ),
    (
        "https://example.com/a?igshid=1&ref_src=twsrc%5Etfw&spm=a2.b&x=1",
        "https://example.com/a?x=1",
    ),
    ("https://example.com/a?utm%5Fsource=z&p=2&utm_source=again", "https://example.com/a?p=2"),
    # parameters that may select content stay, sorted
    (
        "https://example.com/a?page=2&id=7&source=ap&ref=home",
        "https://example.com/a?id=7&page=2&ref=home&source=ap",
    ),
    ("https://example.com/a?b=2&a=1&a=0", "https://example.com/a?a=0&a=1&b=2"),
    ("https://example.com/a?flag&x=", "https://example.com/a?flag=&x="),
    ("https://example.com/?", "https://example.com/"),
    # percent-encoding normalised, dot segments resolved
    ("https://example.com/%7euser/%c3%a4", "https://example.com/~user/%C3%A4"),
    ("https://example.com/a b/ü", "https://example.com/a%20b/%C3%BC"),
    ("https://example.com/a/./b/../c", "https://example.com/a/c"),
    ("https://example.com", "https://example.com/"),
    # user info dropped, trailing dot of the host dropped, IPv6 kept bracketed
    ("https://user:secret@example.com/a", "https://example.com/a"),
    ("https://example.com./a", "https://example.com/a"),
    ("http://[::1]:80/x", "http://[::1]/x"),
    ("http://127.0.0.1:8000/x?utm_source=a", "http://127.0.0.1:8000/x"),
    ("  https://example.com/a\n", "https://example.com/a"),
]


@pytest.mark.parametrize(("raw", "expected"), CANONICAL_CASES)
def test_canonicalize_url(raw: str, expected: str) -> None:
    assert canonicalize_url(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), CANONICAL_CASES)
def test_canonicalize_url_is_idempotent(raw: str, expected: str) -> None:
    once = canonicalize_url(raw)
    assert canonicalize_url(once) == once


@pytest.mark.parametrize(
    "raw",
    [
        "ftp://example.com/file",
        "mailto:desk@example.com",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:text/html,<p>x</p>",
        "//example.com/no-scheme",
        "/relative/path",
        "",
        "http:///no-host",
        "http://example.com:99999/",
        "http://[::1/broken",
    ],
)
def test_canonicalize_url_rejects_what_is_not_an_http_url(raw: str) -> None:
    with pytest.raises(UnsupportedURL) as caught:
        canonicalize_url(raw)
    assert isinstance(caught.value, PermanentError)
    assert caught.value.url == raw
    assert caught.value.problem


def test_unsupported_url_pickles_with_its_data() -> None:
    error = UnsupportedURL("ftp://example.com/x", "scheme 'ftp' is not http or https")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.url, copy.problem, str(copy)) == (error.url, error.problem, str(error))


@pytest.mark.parametrize(
    ("amp", "expected"),
    [
        (
            "https://www.example.com/news/amp/harbour-plan",
            "https://www.example.com/news/harbour-plan",
        ),
        (
            "https://www.example.com/amp/news/harbour-plan",
            "https://www.example.com/news/harbour-plan",
        ),
        (
            "https://www.example.com/2024/03/harbour-plan/amp/",
            "https://www.example.com/2024/03/harbour-plan/",
        ),
        (
            "https://www.example.com/2024/03/harbour-plan/amp",
            "https://www.example.com/2024/03/harbour-plan",
        ),
        (
            "https://www.example.com/news/harbour-plan.amp.html",
            "https://www.example.com/news/harbour-plan.html",
        ),
        (
            "https://www.example.co.uk/news/world-68123.amp",
            "https://www.example.co.uk/news/world-68123",
        ),
        ("https://www.example.com/news/x?amp=1&id=3", "https://www.example.com/news/x?id=3"),
        ("https://www.example.com/news/x?amp", "https://www.example.com/news/x"),
        ("https://www.example.com/news/x?outputType=amp", "https://www.example.com/news/x"),
        ("https://amp.example.co.uk/world/x", "https://www.example.co.uk/world/x"),
        ("https://amp.news.example.com/world/x", "https://news.example.com/world/x"),
        (
            "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/news/x.amp?utm_source=a",
            "https://www.example.com/news/x",
        ),
        (
            "https://www.google.com/amp/s/www.example.com/news/x/amp/",
            "https://www.example.com/news/x/",
        ),
        ("https://www.google.com/amp/www.example.com/news/x", "http://www.example.com/news/x"),
    ],
)
def test_amp_to_canonical(amp: str, expected: str) -> None:
    assert amp_to_canonical(amp) == expected
    assert amp_to_canonical(expected) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://www.example.com/science/ampere-and-volts",
        "https://www.example.com/camp/summer",
        "https://www.example.com/news/x?output=json",
        "https://www.google.com/search?q=amp",
        "https://example.com/news/x",
    ],
)
def test_amp_to_canonical_leaves_other_urls_alone(url: str) -> None:
    assert amp_to_canonical(url) == canonicalize_url(url)


@pytest.mark.parametrize(
    ("viewer", "expected"),
    [
        # nothing after the viewer prefix: the unwrapped URL would have no host
        ("https://www.google.com/amp/", "https://www.google.com/"),
        ("https://www.google.com/amp/s/", "https://www.google.com/s/"),
        (
            "https://www-example-com.cdn.ampproject.org/c/s/",
            "https://www-example-com.cdn.ampproject.org/c/s/",
        ),
    ],
)
def test_an_amp_wrapper_without_a_usable_target_keeps_the_outer_url(
    viewer: str, expected: str
) -> None:
    assert amp_to_canonical(viewer) == expected
    assert choose_canonical(viewer, []) == expected


PAGE = "https://www.example.com/city/harbour-plan?utm_source=rss#top"


@pytest.mark.parametrize(
    ("page", "declared", "expected"),
    [
        # rel=canonical first, resolved when relative, tracking stripped
        (
            PAGE,
            ["/city/harbour-plan-2024?fbclid=1", None],
            "https://www.example.com/city/harbour-plan-2024",
        ),
        (PAGE, ["harbour-plan-v2", None], "https://www.example.com/city/harbour-plan-v2"),
        (PAGE, ["//www.example.com/c/x", None], "https://www.example.com/c/x"),
        # og:url when rel=canonical is missing, blank or unusable
        (PAGE, [None, "https://www.example.com/og"], "https://www.example.com/og"),
        (PAGE, ["   ", "https://www.example.com/og"], "https://www.example.com/og"),
        (PAGE, ["javascript:void(0)", "https://www.example.com/og"], "https://www.example.com/og"),
        (PAGE, ["http://[broken", "https://www.example.com/og"], "https://www.example.com/og"),
        # another registered site is ignored, the next candidate or the page is used
        (
            PAGE,
            ["https://aggregator.example.net/story/1", "https://www.example.com/og"],
            "https://www.example.com/og",
        ),
        (
            PAGE,
            ["https://aggregator.example.net/story/1", None],
            "https://www.example.com/city/harbour-plan",
        ),
        (
            PAGE,
            ["https://example.com.evil.net/city/harbour-plan"],
            "https://www.example.com/city/harbour-plan",
        ),
        # same registered site on another subdomain or scheme is fine
        (PAGE, ["http://news.example.com/harbour"], "http://news.example.com/harbour"),
        (
            "https://www.example.co.uk/a",
            ["https://news.example.co.uk/a"],
            "https://news.example.co.uk/a",
        ),
        # hosts under a public suffix are different sites
        (
            "https://alice.blogspot.com/p/1",
            ["https://bob.blogspot.com/p/1"],
            "https://alice.blogspot.com/p/1",
        ),
        # a canonical pointing at the home page is a template bug
        (PAGE, ["https://www.example.com/"], "https://www.example.com/city/harbour-plan"),
        ("https://www.example.com/", ["https://www.example.com/"], "https://www.example.com/"),
        # no declaration: the page URL, AMP-mapped
        (
            "https://www.example.com/city/harbour-plan/amp/",
            [],
            "https://www.example.com/city/harbour-plan/",
        ),
        # loopback demo site: the host stands in for the registered domain
        ("http://127.0.0.1:8000/a/1", ["/a/1-canonical"], "http://127.0.0.1:8000/a/1-canonical"),
        ("http://127.0.0.1:8000/a/1", ["http://127.0.0.2:8000/a/1"], "http://127.0.0.1:8000/a/1"),
        ("http://localhost:8000/a/1", ["http://localhost:8000/b"], "http://localhost:8000/b"),
    ],
)
def test_choose_canonical(page: str, declared: list[str | None], expected: str) -> None:
    chosen = choose_canonical(page, declared)
    assert chosen == expected
    assert canonicalize_url(chosen) == chosen


def test_choose_canonical_accepts_any_iterable() -> None:
    declared = (value for value in [None, "https://www.example.com/og"])
    assert choose_canonical(PAGE, declared) == "https://www.example.com/og"


def test_choose_canonical_rejects_a_non_http_page() -> None:
    with pytest.raises(UnsupportedURL):
        choose_canonical("file:///etc/passwd", ["https://www.example.com/x"])


@pytest.mark.parametrize(
    ("link", "base", "expected"),
    [
        ("/a/b?c=1#d", "https://news.example.org/x/", "https://news.example.org/a/b?c=1#d"),
        ("  page.html ", "https://news.example.org/x/", "https://news.example.org/x/page.html"),
        ("//cdn.example.org/i.png", "https://news.example.org/", "https://cdn.example.org/i.png"),
        ("HTTP://Example.org/a", "", "HTTP://Example.org/a"),
        ("/a", "", None),  # relative with no base to resolve it against
        ("", "https://news.example.org/", None),
        ("javascript:alert(1)", "https://news.example.org/", None),
        ("mailto:desk@example.org", "https://news.example.org/", None),
        ("file:///etc/passwd", "https://news.example.org/", None),
        ("http:///no-host", "", None),
        # urljoin and urlsplit raise ValueError on these
        ("http://[bad/a", "https://news.example.org/", None),
        ("a.html", "http://[bad/", None),
        ("http://example.org:99999/a", "", None),
    ],
)
def test_absolute_http(link: str, base: str, expected: str | None) -> None:
    assert absolute_http(link, base) == expected


@pytest.mark.parametrize(
    ("url", "site"),
    [
        ("https://www.example.co.uk/a", "example.co.uk"),
        ("https://news.example.com/a", "example.com"),
        ("https://alice.blogspot.com/", "alice.blogspot.com"),
        ("http://127.0.0.1:8000/", "127.0.0.1"),
        ("http://localhost/", "localhost"),
    ],
)
def test_registered_site(url: str, site: str) -> None:
    assert registered_site(url) == site


def test_url_id_is_the_sha256_of_the_canonical_url() -> None:
    canonical = "https://www.example.com/city/harbour-plan"
    # pinned: ids are stored; changing the scheme would re-ingest every article
    assert url_id(canonical) == "7a72e3110cfa6e822a8b729a4081208111de463a15e26ef34f51ed64acdee3c4"
    assert url_id(canonical) == hashlib.sha256(canonical.encode()).hexdigest()


def test_url_id_is_equal_for_spellings_of_one_url_and_differs_otherwise() -> None:
    spellings = [
        "https://www.example.com/city/harbour-plan",
        "HTTPS://WWW.EXAMPLE.COM:443/city/harbour-plan?utm_source=x#frag",
        "https://www.example.com/city/./harbour-plan?fbclid=abc",
    ]
    assert len({url_id(s) for s in spellings}) == 1
    assert url_id("https://www.example.com/city/harbour-plan-2") != url_id(spellings[0])
    assert url_id("https://www.example.com/City/harbour-plan") != url_id(spellings[0])
