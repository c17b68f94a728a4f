"""The crawl: claims on the frontier, and the Scrapy crawl run in a child process (``spiders.run``).

Scrapy is never imported here; the child process is the only place it runs.
May import: pipeline.errors, pipeline.settings, pipeline.net, pipeline.normalise, pipeline.store,
pipeline.feeds, pipeline.discover.
"""
