"""Topic alerts: the query language, stored rules, matching, the digest outbox, digests and SMTP.

May import: every stage before it (errors, settings, net, normalise, store, feeds, discover, crawl).
pipeline.settings validates rules with pipeline.alerts.query, so query is to import only
pipeline.errors (today it still reads the analysed languages from pipeline.store.client).
"""
