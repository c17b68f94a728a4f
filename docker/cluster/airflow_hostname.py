"""The host name a Celery worker of the loopback cluster reports for its tasks.

Airflow records on each task instance the host that ran it (``[core] hostname_callable``).
Two workers on one machine would both report the machine's name; docker/cluster/stack.sh sets
this callable for its workers so that each reports its Celery name, ``worker1@<host>`` (the
host as Celery's ``%h`` names it), which still reaches the machine when read as a URL's
authority: the part before ``@`` is a user name there.
"""

from __future__ import annotations

import os
import socket

__all__ = ["hostname"]


def hostname() -> str:
    """``NEWSRADAR_CLUSTER_WORKER@<host>``, or Airflow's own choice (the FQDN) when unset."""
    worker = os.environ.get("NEWSRADAR_CLUSTER_WORKER", "")
    return f"{worker}@{socket.gethostname()}" if worker else socket.getfqdn()
