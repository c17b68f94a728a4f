"""Topic alerts: the query language, stored rules, matching, the digest outbox, digests and SMTP.

In the order an alert takes: ``query`` (the rule language, pure), ``rules`` (stored rules),
``match`` (rules run on new articles, alerts written to the outbox), ``outbox`` (alert and
digest documents and the digest state machine), ``send`` (which digests go out, built and
handed to ``smtp``), ``digest`` (the e-mail), ``smtp`` (delivery). ``trial`` is ``newsradar
alerts test``; ``reads`` and ``highlight`` are the searches several of them share.

May import: every stage before it (errors, settings, net, normalise, store, feeds, discover, crawl).
pipeline.settings validates rules with pipeline.alerts.query, so query imports only
pipeline.errors.
"""
