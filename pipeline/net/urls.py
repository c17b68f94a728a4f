"""Canonical URLs and document ids: one spelling per article, whatever link led to it."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from urllib.parse import SplitResult, unquote_plus, urljoin, urlsplit, urlunsplit

import courlan
import w3lib.url

from pipeline.errors import PermanentError

__all__ = [
    "UnsupportedURL",
    "absolute_http",
    "amp_to_canonical",
    "canonicalize_url",
    "choose_canonical",
    "registered_site",
    "url_id",
]


class UnsupportedURL(PermanentError):
    """A URL that cannot name an article: not http(s), no host, or malformed."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(url, problem)
        self.url = url
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.url!r}: {self.problem}"


_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Click ids, analytics and newsletter parameters that never select content. Matched on the
# lower-cased, percent-decoded name. Generic names such as "source", "ref" or "id" are left
# alone on purpose: on some sites they do select the article.
_TRACKING_PARAMS = frozenset(
    {
        "__hsfp",
        "__hssc",
        "__hstc",
        "__twitter_impression",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "_openstat",
        "action_object_map",
        "action_ref_map",
        "action_type_map",
        "at_campaign",
        "at_medium",
        "cmp",
        "dclid",
        "fb_action_ids",
        "fb_action_types",
        "fb_ref",
        "fb_source",
        "fbclid",
        "gbraid",
        "gclid",
        "gclsrc",
        "guccounter",
        "guce_referrer",
        "guce_referrer_sig",
        "hsctatracking",
        "igsh",
        "igshid",
        "li_fat_id",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "msclkid",
        "ncid",
        "ocid",
        "rb_clickid",
        "ref_src",
        "ref_url",
        "s_cid",
        "sc_cid",
        "scm",
        "smid",
        "smtyp",
        "spm",
        "sr_share",
        "ttclid",
        "twclid",
        "wbraid",
        "wickedid",
        "xtor",
        "yclid",
        "ysclid",
    }
)
_TRACKING_PREFIXES = ("utm_", "itm_", "pk_", "mtm_", "matomo_", "hsa_", "ns_", "at_custom", "vero_")

# Query parameters that only switch a page to its AMP rendering.
_AMP_PARAMS = frozenset({"amp", "_amp", "amp_js_v", "amp_gsa", "usqp"})
_AMP_VALUED_PARAMS = frozenset({"outputtype", "output"})  # ...but only when the value is "amp"
_AMP_CACHE_SUFFIX = ".cdn.ampproject.org"
_GOOGLE_AMP_HOSTS = frozenset({"google.com", "www.google.com"})


def _is_tracking_param(name: str) -> bool:
    key = unquote_plus(name).strip().lower()
    return key in _TRACKING_PARAMS or key.startswith(_TRACKING_PREFIXES)


def _split(url: str) -> SplitResult:
    """Split a URL, translating the standard library's ValueError (bad port, bad IPv6)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError as err:
        raise UnsupportedURL(url, f"malformed: {err}") from err
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise UnsupportedURL(url, f"scheme {scheme or '(none)'!r} is not http or https")
    if not parts.hostname:
        raise UnsupportedURL(url, "no host")
    return parts


def _netloc(scheme: str, parts: SplitResult) -> str:
    """Host and non-default port; user info is dropped (it never selects an article)."""
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsupportedURL(urlunsplit(parts), "no host")
    if ":" in host:  # urlsplit strips the brackets of an IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{host}:{port}"
    return host


def canonicalize_url(url: str) -> str:
    """Return the canonical spelling of an http(s) URL; raise UnsupportedURL otherwise."""
    parts = _split(url)
    scheme = parts.scheme.lower()
    rebuilt = urlunsplit((scheme, _netloc(scheme, parts), parts.path, parts.query, ""))
    if parts.query:
        tracking = [
            pair.partition("=")[0]
            for pair in parts.query.split("&")
            if pair and _is_tracking_param(pair.partition("=")[0])
        ]
        if tracking:
            rebuilt = w3lib.url.url_query_cleaner(rebuilt, tracking, remove=True, unique=False)
    try:
        # w3lib: IDNA host, lower-case host, sorted query, upper-case %XX, dot segments resolved
        canonical = w3lib.url.canonicalize_url(rebuilt, keep_blank_values=True)
    except (ValueError, UnicodeError) as err:
        raise UnsupportedURL(url, f"malformed: {err}") from err
    return canonical


def _unwrap_amp_cache(parts: SplitResult, host: str) -> str | None:
    """The publisher URL inside an AMP cache or Google AMP viewer URL, if this is one."""
    path = parts.path
    if host.endswith(_AMP_CACHE_SUFFIX):
        # https://www-example-com.cdn.ampproject.org/c/s/www.example.com/a -> https://www.example.com/a
        for kind in ("/c/", "/v/", "/i/"):
            if path.startswith(kind):
                path = path[len(kind) - 1 :]
                break
        else:
            return None
    elif host in _GOOGLE_AMP_HOSTS and path.startswith("/amp/"):
        path = path[len("/amp") :]
    else:
        return None
    scheme = "http"
    if path.startswith("/s/"):
        scheme, path = "https", path[len("/s") :]
    target = f"{scheme}:/{path}"
    return f"{target}?{parts.query}" if parts.query else target


def _strip_amp_host(host: str, canonical: str) -> str:
    """amp.example.com -> www.example.com; amp.news.example.com -> news.example.com."""
    if not host.startswith("amp.") or host.count(".") < 2:
        return host
    rest = host[len("amp.") :]
    return f"www.{rest}" if courlan.extract_domain(canonical) == rest else rest


def _strip_amp_path(path: str) -> str:
    segments = [s for s in path.split("/") if s.lower() != "amp"]
    last = segments[-1] if segments else ""
    lowered = last.lower()
    for suffix, replacement in ((".amp.html", ".html"), (".amp.htm", ".htm"), (".amp", "")):
        if lowered.endswith(suffix) and len(last) > len(suffix):
            segments[-1] = last[: -len(suffix)] + replacement
            break
    stripped = "/".join(segments)
    return stripped if stripped.startswith("/") else "/" + stripped


def _strip_amp_query(query: str) -> str:
    kept = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        key = unquote_plus(name).lower()
        if key in _AMP_PARAMS or (key in _AMP_VALUED_PARAMS and value.lower() == "amp"):
            continue
        kept.append(pair)
    return "&".join(p for p in kept if p)


def amp_to_canonical(url: str) -> str:
    """Map an AMP URL (AMP cache, amp. host, /amp, .amp.html, ?amp=1) to its likely canonical."""
    canonical = canonicalize_url(url)
    parts = urlsplit(canonical)
    host = parts.hostname or ""
    inner = _unwrap_amp_cache(parts, host)
    if inner is not None:
        try:
            canonical = canonicalize_url(inner)
        except UnsupportedURL:
            # Nothing usable inside ("https://www.google.com/amp/" has no host after the
            # prefix): the outer URL is the best spelling there is.
            pass
        else:
            parts = urlsplit(canonical)
            host = parts.hostname or ""
    netloc = parts.netloc.replace(host, _strip_amp_host(host, canonical), 1)
    path = _strip_amp_path(parts.path)
    query = _strip_amp_query(parts.query) if parts.query else ""
    return canonicalize_url(urlunsplit((parts.scheme, netloc, path, query, "")))


def absolute_http(link: str, base: str) -> str | None:
    """``link`` resolved against ``base`` if that is an http(s) URL with a host, else None."""
    text = link.strip()
    if not text:
        return None
    try:
        absolute = urljoin(base, text)
        parts = urlsplit(absolute)
        _ = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:  # urljoin and urlsplit raise it on a bad IPv6 literal ("http://[x")
        return None
    if parts.scheme not in _SCHEMES or not parts.hostname:  # urlsplit lower-cases the scheme
        return None
    return absolute


def registered_site(url: str) -> str:
    """The registered domain of a URL (example.co.uk), or its host for IPs and local names."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host
    # courlan asks the public suffix list (via tld); it answers None for localhost and the like
    return courlan.extract_domain(url) or host


def _is_site_root(url: str) -> bool:
    parts = urlsplit(url)
    return parts.path in ("", "/") and not parts.query


def choose_canonical(page_url: str, declared: Iterable[str | None]) -> str:
    """Pick the article's canonical URL: the first usable declared one, else the page URL.

    ``declared`` is rel=canonical then og:url. A declared URL is used only when it is http(s)
    and on the page's registered site; relative values are resolved against ``page_url``.
    """
    page = amp_to_canonical(page_url)
    site = registered_site(page)
    for value in declared:
        if value is None or not value.strip():
            continue
        try:
            candidate = canonicalize_url(urljoin(page_url.strip(), value.strip()))
        except (UnsupportedURL, ValueError):  # urljoin raises ValueError on "http://[broken"
            continue
        if registered_site(candidate) != site:
            continue
        # A CMS that points every article's canonical at the home page would fold all of
        # them into one document id; such a declaration is a template bug, not a claim.
        if _is_site_root(candidate) and not _is_site_root(page):
            continue
        return candidate
    return page


def url_id(canonical_url: str) -> str:
    """Deterministic document id: the sha256 hex digest of the canonical URL.

    The URL is canonicalised again first (a no-op on a canonical URL), so a caller that
    passes a raw URL by mistake still gets the id every other caller gets.
    """
    return hashlib.sha256(canonicalize_url(canonical_url).encode("utf-8")).hexdigest()
