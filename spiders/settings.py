"""Scrapy settings of the article crawl; spiders/run.py lays each job's values over them."""

from __future__ import annotations

BOT_NAME = "newsradar"
SPIDER_MODULES = ["spiders.spiders"]
NEWSPIDER_MODULE = "spiders.spiders"
USER_AGENT = "newsradar (+https://example.org/newsradar-contact)"  # run.py sets the real one

# --- politeness: per host (Scrapy's slot key is the host name) ---
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 2
# A response yields one item; Scrapy's default of 100 parallel item slots per response only
# makes asyncio tasks the reactor thread then has to schedule.
CONCURRENT_ITEMS = 2
DOWNLOAD_DELAY = 1.0  # also AutoThrottle's floor
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 2.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
COOKIES_ENABLED = False  # stateless: what we fetch does not depend on what we fetched before
# No listening sockets: the telnet console, and Scrapy 2.19's remote control, an HTTP
# server on localhost that runs Python code sent to it (its token is written to ~/.local).
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False

# --- size and time caps ---
# Scrapy's default is 1 GiB. http11 stops reading past it, and HttpCompressionMiddleware
# applies it again to the decompressed body, so a gzip bomb is cut at the same cap.
DOWNLOAD_MAXSIZE = 10 * 1024 * 1024
DOWNLOAD_WARNSIZE = 2 * 1024 * 1024
DOWNLOAD_TIMEOUT = 30
DNS_TIMEOUT = 10

# --- what may be fetched: http(s) only, public addresses only (spiders.resolver) ---
DOWNLOAD_HANDLERS = {"file": None, "data": None, "ftp": None, "s3": None}
DOWNLOAD_VERIFY_CERTIFICATES = True  # Scrapy's default is False; pipeline.net.fetch verifies too
TWISTED_DNS_RESOLVER = "spiders.resolver.GuardedResolver"
SSRF_ALLOW_PRIVATE_NETWORKS = False
SSRF_ALLOWED_NETWORKS: list[str] = []  # CIDRs let through anyway, e.g. ["127.0.0.1/32"]

# --- robots.txt: our middleware, since Scrapy's reads a 5xx robots.txt as allow-all ---
ROBOTSTXT_OBEY = False
ROBOTSTXT_USER_AGENT = "newsradar"
ROBOTSTXT_PARSER = "scrapy.robotstxt.ProtegoRobotParser"

# --- retries: transient failures only ---
RETRY_ENABLED = True
RETRY_TIMES = 2
# Scrapy's list also has 408; we retry no 4xx but 429.
RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524]
# Scrapy's list without CannotResolveHostError: the SSRF guard resolves first, and a name
# that does not resolve now will not in a second either.
RETRY_EXCEPTIONS = [
    "scrapy.exceptions.DownloadConnectionRefusedError",
    "scrapy.exceptions.DownloadFailedError",
    "scrapy.exceptions.DownloadTimeoutError",
    "scrapy.exceptions.ResponseDataLossError",
    "twisted.internet.error.ConnectionDone",
    "twisted.internet.error.ConnectError",
    "twisted.internet.error.ConnectionLost",
    "scrapy.core.downloader.handlers.http11.TunnelError",
]
RETRY_BACKOFF = 1.0  # seconds before the first retry when there is no Retry-After; doubles
RETRY_AFTER_MAX = 120.0  # a longer Retry-After is not waited for; the outcome records it
RETRY_GIVE_UP_LOG_LEVEL = "INFO"  # giving up is the URL's outcome, not an error of the run

# --- redirects ---
REDIRECT_ENABLED = True
REDIRECT_MAX_TIMES = 5
METAREFRESH_ENABLED = False  # the page as served is what we normalise

# --- every filtered request is logged (at debug) and recorded by the OutcomeLedger ---
DUPEFILTER_DEBUG = True

# --- components: order is data. process_request runs low to high, process_response high
# to low. The SSRF guard comes first, so nothing (robots.txt included) is requested from a
# refused host, and it sees every redirect hop since those come back as new requests.
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,
    "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware": None,
    "scrapy.downloadermiddlewares.redirect.RedirectMiddleware": None,
    "spiders.middlewares.ssrf.SsrfGuardMiddleware": 40,
    "spiders.middlewares.robots.RobotsTxtMiddleware": 100,
    "spiders.middlewares.retry.RetryMiddleware": 550,
    "spiders.middlewares.httpcompression.HttpCompressionMiddleware": 590,
    "spiders.middlewares.redirect.RedirectMiddleware": 600,
}
ITEM_PIPELINES = {
    "spiders.pipelines.normalise.NormalisePipeline": 300,
}
# --- extraction: in worker processes, each page under a CPU budget (pipeline.normalise.page) ---
NORMALISE_WORKERS = 1  # run.py sets it per job
EXTRACT_TIMEOUT = 10.0  # seconds of CPU per page; run.py sets Settings.extract_timeout
EXTENSIONS = {
    "spiders.extensions.outcomes.OutcomeLedger": 100,
}
OUTCOMES_FILE = ""  # run.py sets it per job

LOG_LEVEL = "INFO"
