"""The one way a command reaches Elasticsearch: a client from the settings, always closed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipeline.settings import Settings

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

__all__ = ["connected"]


@contextmanager
def connected(settings: Settings, *, timeout: float = 30.0) -> Iterator[Elasticsearch]:
    """A client for the settings' node, closed when the block ends, however it ends."""
    from pipeline.store.client import connect

    es = connect(settings, timeout=timeout)
    try:
        yield es
    finally:
        es.close()
