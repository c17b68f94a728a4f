"""Operations around the pipeline: ``newsradar status`` (every stage's health), Kibana.

May import: every stage (errors, settings, net, normalise, store, feeds, discover, crawl, alerts).
"""
