"""How the contents/index page test (qa.load.is_contents_or_index_page) does on real PDFs.

    python bench/contents_pages.py /usr/share/doc/*/*.pdf ...   (writes bench/results/contents_pages.json)

For each page: whether the test flags it, and whether its first lines carry a "Contents" or "Index" heading
(a reference label that misses continuation pages, so flagged pages without a heading are listed for reading).
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

from pypdf import PdfReader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from qa.load import clean_text, is_contents_or_index_page  # noqa: E402

HEADING = re.compile(r"^\s*(table of contents|contents|index)\s*$", re.IGNORECASE | re.MULTILINE)


def pages_of(path: Path) -> list[str]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    import io

    return [clean_text(p.extract_text() or "") for p in PdfReader(io.BytesIO(data)).pages]


def main(paths: list[str]) -> None:
    report = {}
    for name in paths:
        pages = pages_of(Path(name))
        rows = []
        for number, text in enumerate(pages, 1):
            head = "\n".join(line for line in text.splitlines()[:4])
            rows.append({"page": number, "flagged": is_contents_or_index_page(text),
                         "heading": bool(HEADING.search(head)), "first_line": text.strip()[:60]})
        flagged = [r for r in rows if r["flagged"]]
        report[Path(name).name] = {
            "pages": len(rows), "flagged": [r["page"] for r in flagged],
            "headed": [r["page"] for r in rows if r["heading"]],
            "headed_not_flagged": [r["page"] for r in rows if r["heading"] and not r["flagged"]],
            "flagged_rows": flagged,
        }
        print(f"{Path(name).name}: {len(rows)} pages, flagged {report[Path(name).name]['flagged']}, "
              f"headed {report[Path(name).name]['headed']}")
    out = Path(__file__).resolve().parent / "results" / "contents_pages.json"
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1:])
