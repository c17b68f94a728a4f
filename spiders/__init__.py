"""The Scrapy project: the article spider, its middlewares, item pipelines and settings."""
