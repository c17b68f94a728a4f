"""Elasticsearch: the client and index names, the bulk writer, the documents, search, frontier.

The documents are articles, stories and pages; the frontier is the URL queue that feeds and
discover write and the crawl reads.

May import: pipeline.errors, pipeline.settings, pipeline.net, pipeline.normalise.
"""
