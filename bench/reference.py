"""news-please (PyPI) over the benchmark's pages: the reference the end-to-end figures compare to.

news-please is imported from this interpreter when installed (the ``bench`` extra), else from
a virtualenv of its own under .local/bench-newsplease, created on first use. It runs in its own
process: its own fetch (a thread per URL) and extraction (a process pool), which neither
dedups, indexes nor matches.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NEWSPLEASE_VENV = REPO / ".local" / "bench-newsplease"
NEWSPLEASE = "news-please==1.6.16"


def newsplease_python() -> tuple[str, str]:
    """An interpreter that can import newsplease, and where it comes from."""
    probe = subprocess.run([sys.executable, "-c", "import newsplease"], capture_output=True)
    if probe.returncode == 0:
        return sys.executable, "this interpreter"
    python = NEWSPLEASE_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(NEWSPLEASE_VENV)], check=True)
    installed = subprocess.run([str(python), "-c", "import newsplease"], capture_output=True)
    if installed.returncode != 0:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "uv",
                "pip",
                "install",
                "-q",
                "--python",
                str(python),
                NEWSPLEASE,
            ],
            check=True,
        )
    return str(python), str(NEWSPLEASE_VENV)


# In chunks, so a few thousand URLs do not start a few thousand threads at once.
_REFERENCE = r"""
import json, sys, time
from newsplease import NewsPlease
urls = json.load(open(sys.argv[1]))
chunk = int(sys.argv[2])
started = time.monotonic()
extracted = titled = 0
languages = {}
for i in range(0, len(urls), chunk):
    results = NewsPlease.from_urls(urls[i:i + chunk], request_args={"timeout": 30},
                                   fetch_images=False)
    for article in results.values():
        if article and getattr(article, "maintext", None):
            extracted += 1
            titled += bool(article.title)
            languages[article.language] = languages.get(article.language, 0) + 1
print(json.dumps({"pages": len(urls), "extracted": extracted, "titled": titled,
                  "languages": languages, "seconds": time.monotonic() - started}))
"""


def run_reference(urls: list[str], chunk: int) -> tuple[dict[str, Any], str]:
    """news-please over ``urls``: its counts, seconds and CPU seconds, and where it came from.

    ``cpu`` is the CPU of its process and of the extraction processes it waited for, read
    from this process's RUSAGE_CHILDREN; no other child may end meanwhile.
    """
    python, origin = newsplease_python()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as listing:
        json.dump(urls, listing)
    before = _children_cpu()
    try:
        done = subprocess.run(
            [python, "-c", _REFERENCE, listing.name, str(chunk)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        Path(listing.name).unlink(missing_ok=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["cpu"] = _children_cpu() - before
    return result, origin


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
