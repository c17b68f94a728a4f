"""A source's article URLs from its sitemaps, news sitemaps and section pages.

May import: pipeline.errors, pipeline.settings, pipeline.net, pipeline.normalise, pipeline.store,
and pipeline.feeds.parse (a source's feeds are read like any listing).
"""
