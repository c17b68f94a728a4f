"""Downloader middlewares: SSRF guard, robots.txt, retry, redirect and decompression caps."""
