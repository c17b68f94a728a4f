"""Page to article: extraction, language, dates, canonical URL, content hash, MinHash fingerprint.

Pure functions over fetched bytes; nothing here talks to Elasticsearch.
May import: pipeline.errors, pipeline.settings, pipeline.net.
"""
