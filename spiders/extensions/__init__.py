"""Extensions: the ledger that writes one outcome per requested URL."""
