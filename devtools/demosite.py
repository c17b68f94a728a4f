"""The bundled demo news site: a loopback HTTP server over demo/site and its catalog of truth."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import posixpath
import sys
import threading
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timezone
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Annotated, Literal, cast

from pydantic import AfterValidator, TypeAdapter, ValidationError

from devtools.foreground import stop_on_signals, wait_for_interrupt
from pipeline.errors import ConfigError, NewsradarError, TransientError
from pipeline.settings import Source

__all__ = [
    "DEFAULT_ROOT",
    "CatalogEntry",
    "DemoSite",
    "DemoSource",
    "load_catalog",
    "load_sources",
    "main",
]

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "demo" / "site"
"""The site shipped in the repository, found relative to this module."""

PLACEHOLDER = b"{{BASE}}"
_HOST = "127.0.0.1"

# A story is one happening: its original, copies of a report, and other outlets' reports of it
# (reworded from one, translated, or written independently: "report").
Kind = Literal["original", "exact_copy", "edited_copy", "reworded", "translation", "report"]
Topic = Literal["nato-enlargement", "nato-other", "other"]

# Feeds are recognised by their file name, everything else by its suffix.
_TYPES_BY_NAME = {"rss.xml": "application/rss+xml", "atom.xml": "application/atom+xml"}
_TYPES_BY_SUFFIX = {
    ".html": "text/html",
    ".htm": "text/html",
    ".xml": "application/xml",
    ".txt": "text/plain",
    ".json": "application/json",
    ".css": "text/css",
}
_TEXTUAL = {"application/json", "application/xml", "application/rss+xml", "application/atom+xml"}


def _stdlib_offset(value: datetime) -> datetime:
    # pydantic attaches its own tzinfo class; plain datetime.timezone compares and pickles alike.
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("published needs a UTC offset")  # pydantic reports it as invalid
    return value.replace(tzinfo=timezone(offset))


Timestamp = Annotated[datetime, AfterValidator(_stdlib_offset)]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """The truth about one article page of the demo site (see demo/site/catalog.json)."""

    path: str
    source: str
    language: str
    title: str
    published: Timestamp
    story: str
    kind: Kind
    topic: Topic
    in_feed: bool
    in_sitemap: bool
    on_section_page: bool
    robots_disallowed: bool
    canonical: str
    """Path the page's ``<link rel="canonical">`` points to (itself, or the main page of an AMP)."""
    charset: str
    """Encoding of the stored bytes; ``windows-1252`` marks the page served without a charset."""


@dataclass(frozen=True, slots=True)
class DemoSource:
    """One news source of the demo site: where its feed, news sitemap and section pages are."""

    id: str
    name: str
    language: str
    home: str
    feed: str | None
    feed_format: Literal["rss", "atom"] | None
    sitemap: str
    section_pages: tuple[str, ...]


_ENTRIES = TypeAdapter(tuple[CatalogEntry, ...])
_SOURCES = TypeAdapter(tuple[DemoSource, ...])


def _read_catalog(root: Path | None) -> tuple[Path, dict[str, object]]:
    path = (root or DEFAULT_ROOT) / "catalog.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), f"line {exc.lineno}", f"not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "expected a JSON object with sources and articles")
    return path, data


def _validation_problem(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]


def load_catalog(root: Path | None = None) -> tuple[CatalogEntry, ...]:
    """Read the catalog of every article page on the site, sorted by path."""
    path, data = _read_catalog(root)
    try:
        entries = _ENTRIES.validate_python(data.get("articles"))
    except ValidationError as exc:
        raise ConfigError(str(path), *_validation_problem(exc)) from exc
    return tuple(sorted(entries, key=lambda entry: entry.path))


def load_sources(root: Path | None = None) -> tuple[DemoSource, ...]:
    """Read the sources of the site (feed, news sitemap and section pages of each)."""
    path, data = _read_catalog(root)
    try:
        return _SOURCES.validate_python(data.get("sources"))
    except ValidationError as exc:
        raise ConfigError(str(path), *_validation_problem(exc)) from exc


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    root: Path
    base_url: str
    # GET requests per path, so tests can tell how often a page was really fetched.
    hits: Counter[str]
    hits_lock: threading.Lock


class _Handler(BaseHTTPRequestHandler):
    """Serves static files with {{BASE}} substituted, validators and conditional GET."""

    server_version = "newsradar-demosite/1"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server = cast(_Server, self.server)
        with server.hits_lock:
            server.hits[urllib.parse.urlsplit(self.path).path] += 1
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self, send_body: bool) -> None:
        server = cast(_Server, self.server)
        url_path = urllib.parse.urlsplit(self.path).path
        try:
            decoded = urllib.parse.unquote_to_bytes(url_path).decode("utf-8")
        except UnicodeDecodeError:
            self.send_error(HTTPStatus.BAD_REQUEST, "path is not UTF-8")
            return
        segments = decoded.split("/")
        # Checked after percent-decoding, so %2e%2e and %2f cannot smuggle a parent directory in.
        if not decoded.startswith("/") or "\\" in decoded or "\x00" in decoded or ".." in segments:
            self.send_error(HTTPStatus.BAD_REQUEST, "bad path")
            return
        if any(part.startswith(".") for part in segments):
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        target = (server.root / decoded.lstrip("/")).resolve()
        # A symlink inside the site must not lead outside it either.
        if not target.is_relative_to(server.root):
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        if target.is_dir():
            if not url_path.endswith("/"):
                self._redirect(url_path + "/")
                return
            target = target / "index.html"
        if not target.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self._send_file(target, server.base_url, send_body)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.MOVED_PERMANENTLY)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_file(self, target: Path, base_url: str, send_body: bool) -> None:
        try:
            body = target.read_bytes().replace(PLACEHOLDER, base_url.encode("ascii"))
            mtime = int(target.stat().st_mtime)
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        last_modified = formatdate(mtime, usegmt=True)
        if self._not_modified(etag, mtime):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", _content_type(target.name, body))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        # RFC 9110 13.2.2: If-None-Match, when present, decides alone (weak comparison).
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return "*" in tags or etag in tags
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since is None:
            return False
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False  # an unparsable date is ignored, as RFC 9110 asks
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return datetime.fromtimestamp(mtime, UTC) <= since


def _content_type(name: str, body: bytes) -> str:
    """Media type for a file; a charset is declared only when the bytes really are UTF-8."""
    suffix = posixpath.splitext(name)[1].lower()
    media = _TYPES_BY_NAME.get(name) or _TYPES_BY_SUFFIX.get(suffix, "application/octet-stream")
    if media.startswith("text/") or media in _TEXTUAL:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            # Legacy-encoded pages (the windows-1252 one) go out with no charset at all, so
            # clients must sniff: that is the case the normaliser has to get right.
            return media
        return f"{media}; charset=utf-8"
    return media


class DemoSite:
    """The demo news site on 127.0.0.1, served from a daemon thread; use it as a context manager."""

    def __init__(self, port: int = 0, root: Path | str | None = None) -> None:
        self.root = Path(root).resolve() if root is not None else DEFAULT_ROOT
        if not self.root.is_dir():
            raise ConfigError(str(self.root), "", "the demo site root is not a directory")
        self._port = port
        self.hits: Counter[str] = Counter()  # GET requests per path since the site started
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server, without a trailing slash."""
        if self._server is None:
            raise NewsradarError("the demo site is not running; use it inside a with block")
        return self._server.base_url

    def url(self, path: str) -> str:
        """Absolute URL of a site path such as ``/northwind-times/rss.xml``."""
        return self.base_url + "/" + path.lstrip("/")

    def sources(self) -> tuple[Source, ...]:
        """The site's sources as configured sources, with every listing: feed, sitemap, sections."""
        return tuple(
            Source(
                id=demo.id,
                name=demo.name,
                feeds=(self.url(demo.feed),) if demo.feed else (),
                sitemaps=(self.url(demo.sitemap),),
                start_urls=tuple(self.url(p) for p in demo.section_pages),
                language=demo.language,
            )
            for demo in load_sources(self.root)
        )

    def start(self) -> DemoSite:
        """Bind and start serving; returns self."""
        if self._server is not None:
            return self
        try:
            server = _Server((_HOST, self._port), _Handler)
        except OSError as exc:
            raise TransientError(f"cannot listen on {_HOST}:{self._port}: {exc.strerror}") from exc
        server.root = self.root
        server.base_url = f"http://{_HOST}:{server.server_address[1]}"
        server.hits = self.hits
        server.hits_lock = threading.Lock()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="demosite", kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> DemoSite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _describe(site: DemoSite) -> list[str]:
    lines = [
        f"Serving the demo news site at {site.base_url}/",
        f"  robots.txt      {site.url('/robots.txt')}",
        f"  sitemap index   {site.url('/sitemap.xml')}",
    ]
    for source in load_sources(site.root):
        feed = f"{source.feed_format} {site.url(source.feed)}" if source.feed else "no feed"
        lines.append(f"  {source.id:<20} {feed}")
        lines.append(f"  {'':<20} news sitemap {site.url(source.sitemap)}")
        lines.extend(f"  {'':<20} section {site.url(page)}" for page in source.section_pages)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devtools.demosite [--port 8765]``: serve in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.demosite", description="Serve the bundled demo news site."
    )
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--root", type=Path, default=None, help="site directory to serve")
    args = parser.parse_args(argv)
    # Ctrl-C and SIGTERM stop it cleanly, however it was started.
    stop_on_signals()
    try:
        with DemoSite(port=args.port, root=args.root) as site:
            print("\n".join(_describe(site)), flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            wait_for_interrupt()
    except NewsradarError as exc:
        print(f"demosite: {exc}", file=sys.stderr)
        return 1
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
