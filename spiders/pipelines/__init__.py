"""Item pipelines: a fetched page becomes an outcome."""
