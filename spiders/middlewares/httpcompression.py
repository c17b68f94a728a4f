"""Decompression as Scrapy does it, with its size cap and decode failures as outcomes."""

from __future__ import annotations

import importlib
import struct
import zlib
from typing import TYPE_CHECKING

from scrapy.downloadermiddlewares.httpcompression import (
    HttpCompressionMiddleware as ScrapyHttpCompressionMiddleware,
)
from scrapy.exceptions import IgnoreRequest

# Private, but it is what Scrapy raises when a body inflates past DOWNLOAD_MAXSIZE; the
# gzip-bomb test fails loudly if a Scrapy upgrade changes it.
from scrapy.utils._compression import _DecompressionMaxSizeExceeded

from spiders.exceptions import Ignored

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.http import Response


def _error_class(module: str, name: str) -> tuple[type[Exception], ...]:
    """The decoder's error class, if its module is installed.

    Scrapy takes brotli or brotlicffi, and backports.zstd or (Python 3.14) compression.zstd.
    """
    try:
        found: type[Exception] = getattr(importlib.import_module(module), name)
    except ImportError:
        return ()
    return (found,)


# What a body that does not decode as declared raises; anything else is a bug and stays one.
# gzip: OSError (BadGzipFile), EOFError, struct.error, zlib.error; deflate: zlib.error.
_DECODE_ERRORS: tuple[type[Exception], ...] = (
    zlib.error,
    OSError,
    EOFError,
    struct.error,
    *_error_class("brotli", "error"),
    *_error_class("brotlicffi", "error"),
    *_error_class("backports.zstd", "ZstdError"),
    *_error_class("compression.zstd", "ZstdError"),
)


class HttpCompressionMiddleware(ScrapyHttpCompressionMiddleware):
    """Scrapy's decompression, with a gzip bomb or an undecodable body ending as an outcome.

    Scrapy counts DOWNLOAD_MAXSIZE on the decompressed body, so a gzip bomb is cut at the cap.
    Here that ends as ``oversize`` instead of a bare IgnoreRequest, and a body that does not
    decode as declared ends as ``decode``.
    """

    def process_response(
        self, request: Request, response: Response, spider: Spider | None = None
    ) -> Request | Response:
        """Decompress as Scrapy does; an over-cap or undecodable body ends as an outcome."""
        try:
            return super().process_response(request, response)
        except IgnoreRequest as exc:
            if isinstance(exc.__cause__, _DecompressionMaxSizeExceeded):
                size = exc.__cause__.decompressed_size
                raise Ignored("oversize", f"{size} bytes decompressed so far") from exc
            raise
        except _DECODE_ERRORS as exc:
            raise Ignored("decode", f"{type(exc).__name__}: {exc}"[:300]) from exc
