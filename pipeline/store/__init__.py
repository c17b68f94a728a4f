"""Elasticsearch: the client and index names, the bulk writer, articles, stories, pages, search,
and the frontier (the URL queue that feeds and discover write and the crawl reads).

May import: pipeline.errors, pipeline.settings, pipeline.net, pipeline.normalise.
"""
