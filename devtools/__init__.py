"""Development tools outside the pipeline: the demo, the demo news site server and a mail sink.

May import anything (pipeline, Airflow, rich); nothing in pipeline/ imports devtools.
"""
