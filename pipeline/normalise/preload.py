"""Imported by the extraction pool's fork server only: loads the models there, before any fork.

Every worker forked from the fork server then starts with the language profiles and MinHash
permutations loaded (pipeline.normalise.page.ExtractionPool); nothing else should import it.
"""

from __future__ import annotations

from pipeline.normalise.page import warm_up

warm_up()
