"""Topic alerts: the query language, stored rules, matching, the digest outbox, digests and SMTP.

In the order an alert takes: ``query`` (the rule language, pure), ``rules`` (stored rules),
``match`` (rules run on new articles, alerts written to the outbox) with ``batch`` (the batch's
articles and stories), ``batch_rules`` (the rules' searches), ``relevance`` (how much a matched
article is about the topic) and ``breaking`` (when a story has reached N sources), ``outbox``
(alert and digest documents and the digest state machine), ``send`` (which digests go out,
built and handed to ``smtp``), ``digest`` (the e-mail), ``smtp`` (delivery), ``feedback``
(muted stories, "not relevant" replies, each rule's precision). ``trial`` is ``newsradar alerts
test``; ``reads`` and ``highlight`` are the searches several of them share.

May import: every stage before it (errors, settings, net, normalise, store, feeds, discover, crawl).
pipeline.settings validates rules with pipeline.alerts.query, so query imports only
pipeline.errors.
"""
