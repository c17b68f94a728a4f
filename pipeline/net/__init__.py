"""The network edge: HTTP fetching (SSRF guard, size caps, retries), URL canonicalisation, charsets.

May import: pipeline.errors, pipeline.settings.
"""
