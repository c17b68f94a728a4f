"""Spiders: the article spider fetches the URLs it is given, nothing else."""
