"""Operations around the pipeline: Kibana dashboards.

May import: every stage (errors, settings, net, normalise, store, feeds, discover, crawl, alerts).
"""
