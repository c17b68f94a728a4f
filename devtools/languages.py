"""Write what pipeline/languages.py drives into the files that carry it as data.

``python -m devtools.languages`` rewrites the title_xx / text_xx fields and the folding analyser
of mappings/articles.json (the rest of the file is kept as it is) and the language table of
README.md; ``--check`` only says whether they are in sync (tests/test_languages.py runs it).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any, Final

from pipeline.languages import FOLDED, FOLDED_ANALYSER, LANGUAGES, language_fields

__all__ = ["articles_template", "main", "readme_with_table"]

REPO: Final = Path(__file__).resolve().parents[1]
ARTICLES: Final = REPO / "mappings" / "articles.json"
README: Final = REPO / "README.md"
_LANGUAGE_FIELD: Final = re.compile(r"^(title|text)_[a-z]{2}$")
_TABLE_START: Final = "<!-- languages: written by `python -m devtools.languages` -->"
_TABLE_END: Final = "<!-- languages: end -->"


def articles_template(current: dict[str, Any]) -> dict[str, Any]:
    """``current`` (the articles template) with the table's language fields and analyser."""
    body = copy.deepcopy(current)
    template = body["template"]
    fields = language_fields()
    properties: dict[str, Any] = {}
    for name, spec in template["mappings"]["properties"].items():
        if _LANGUAGE_FIELD.match(name):
            continue
        properties[name] = spec
        # Each language pair follows its standard-analysed field: title, title_af, ... text, ...
        if name in ("title", "text"):
            properties.update({k: v for k, v in fields.items() if k.startswith(f"{name}_")})
    template["mappings"]["properties"] = properties
    template["settings"]["analysis"] = {"analyzer": {FOLDED: FOLDED_ANALYSER}}
    return body


def _dump(body: dict[str, Any]) -> str:
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def _table() -> str:
    rows = [
        "| code | language | analyser | plugin | what the analyser does |",
        "|---|---|---|---|---|",
    ]
    for entry in LANGUAGES:
        analyser = f"`{entry.analyser}`" if entry.stemmed else "folding (fallback)"
        plugin = f"`{entry.plugin}`" if entry.plugin else "analysis-common"
        if not entry.stemmed:
            plugin = "—"
        does = entry.stemming.replace("*", "\\*")  # a bare * would start emphasis
        rows.append(f"| `{entry.code}` | {entry.name} | {analyser} | {plugin} | {does} |")
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    """``readme`` with the language table between its markers written from the table."""
    start = readme.index(_TABLE_START) + len(_TABLE_START)
    end = readme.index(_TABLE_END)
    return f"{readme[:start]}\n{_table()}\n{readme[end:]}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` compare) mappings/articles.json and README.md."""
    parser = argparse.ArgumentParser(prog="python -m devtools.languages", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only say whether they are in sync")
    args = parser.parse_args(argv)
    stale = []
    for path, update in (
        (ARTICLES, lambda text: _dump(articles_template(json.loads(text)))),
        (README, readme_with_table),
    ):
        text = path.read_text(encoding="utf-8")
        wanted = update(text)
        if wanted == text:
            continue
        stale.append(path.relative_to(REPO))
        if not args.check:
            path.write_text(wanted, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(f"out of sync with pipeline/languages.py: {names}", file=sys.stderr)
        print("run: python -m devtools.languages", file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
