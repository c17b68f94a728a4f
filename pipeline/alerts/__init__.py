"""Topic alerts: the query language, stored rules, matching, the digest outbox, digests and SMTP.

May import: every stage before it (errors, settings, net, normalise, store, feeds, discover, crawl).
pipeline.alerts.query is a pure parser (it imports only pipeline.errors) so that
pipeline.settings may use it to validate rules.
"""
