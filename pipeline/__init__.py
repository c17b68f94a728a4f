"""newsradar's pipeline: one package per stage, plain functions for the CLI, Scrapy and Airflow.

The packages in data-flow order; each imports only from the ones above it::

    errors, languages typed errors; the table of languages and their analysers
    settings          the one settings object (environment + YAML)
    net               HTTP fetch with the SSRF guard, URL canonicalisation, charsets
    normalise         page -> article: extraction, language, dates, fingerprints
    store             Elasticsearch: client, bulk writer, articles, stories, pages, search, frontier
    feeds, discover   RSS/Atom pulls; sitemaps and section pages, into the frontier
    crawl             frontier claims and the Scrapy crawl in a child process
    alerts            topic rules, matching, the digest outbox, SMTP
    ops               Kibana dashboards
    jobs              the one API the DAGs, the CLI and the demo call
    cli               the ``newsradar`` command and its terminal tables

Modules are imported from their packages (``from pipeline.normalise.extract import
extract_article``); no package ``__init__`` imports anything, so loading one (for instance while
Airflow parses DAG files) is free. Nothing here imports rich (except cli), Airflow, Scrapy or
devtools.
"""
