"""Load documents (.txt, .md, .rst, .html, .pdf, .docx) into plain text with a stable id and a content hash."""

from __future__ import annotations

import bisect
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
DOCX_SUFFIXES = {".docx"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | DOCX_SUFFIXES


class DocumentError(ValueError):
    """A file that cannot become a document; the message says why, in words a user understands."""


@dataclass(frozen=True)
class Document:
    id: str  # path relative to the corpus root, posix style: stable across machines
    text: str
    sha256: str
    source: str = ""  # where it was read from, for display only
    pages: tuple[int, ...] = ()  # PDFs: where each page starts in text (a skipped page starts where the next does)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pages", tuple(self.pages))  # a list when read back from the saved index

    def page_of(self, offset: int) -> int | None:
        """The 1-based page holding text[offset], or None for documents without pages."""
        return bisect.bisect_right(self.pages, offset) if self.pages else None


def make_document(doc_id: str, text: str, source: str = "", pages: tuple[int, ...] = ()) -> Document:
    text = clean_text(text)
    if not text.strip():
        raise DocumentError(f"{doc_id}: the document is empty (no text to index)")
    return Document(id=doc_id, text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), source=source,
                    pages=tuple(pages))


def megabytes(size: int) -> str:
    return f"{size / 2**20:.1f}".removesuffix(".0") + " MB"


def size_error(name: str, size: int, max_bytes: int) -> DocumentError:
    """The one wording of the size limit (CLI, API and web upload)."""
    return DocumentError(f"{name}: the file is over the {megabytes(max_bytes)} size limit ({size:,} bytes)")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")


def clean_text(text: str) -> str:
    """Unify line ends and blank out control characters (one for one, so nothing shifts afterwards)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    return _CONTROL.sub(" ", text)


def safe_document_id(name: str) -> str:
    """A document id from an untrusted file name: the last path part only, no traversal, no odd characters."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = re.sub(r"[^\w.\- ]", "_", base).strip(" .")
    if not base:
        raise DocumentError(f"{name!r} is not a usable file name")
    return base[:200]


def decode_text(data: bytes, name: str) -> str:
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(f"{name}: looks like a binary file, not text")
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DocumentError(
            f"{name}: not UTF-8 text (invalid byte at position {error.start}); save it as UTF-8 and try again"
        ) from None


class _TextOfHtml(HTMLParser):
    """Collects visible text. A flat event parser: no tree, so deep nesting cannot exhaust the stack."""

    _SKIP = {"script", "style", "template", "noscript", "head", "svg"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
              "blockquote", "pre", "table", "ul", "ol", "header", "footer", "title", "dd", "dt"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n[ \n]*\n *", "\n\n", text)
    return re.sub(r" *\n *", "\n", text).strip()


# A line ending in a page number, a page range (index entries) or a lower-case roman numeral (front matter).
_PAGE_NUMBER_END = re.compile(r"(\.{2,}|\s|,)\s*([0-9]{1,4}([-\u2013][0-9]{1,4})?|[ivx]{1,5})\s*$")
_BARE_PAGE_NUMBER = re.compile(r"^([0-9]{1,4}|[ivxlcdm]{1,8})$")
_DOT_LEADER = re.compile(r"(\.\s?){4,}|\u2026{2,}")


def is_contents_or_index_page(text: str) -> bool:
    """A table of contents or a back-of-book index: most lines are short and end in a page number or trail
    dot leaders. Such pages repeat the headings of the body and would be quoted instead of it."""
    # Letter headings of an index ("A", "B") and the page's own number say nothing either way.
    lines = [line for line in (raw.strip() for raw in text.splitlines())
             if len(line) > 3 and not _BARE_PAGE_NUMBER.match(line)]
    if len(lines) < 5:
        return False
    listed = sum(1 for line in lines if _DOT_LEADER.search(line) or
                 (len(line) <= 90 and _PAGE_NUMBER_END.search(line)))
    return listed / len(lines) >= 0.6


def pdf_to_text(data: bytes, name: str) -> tuple[str, tuple[int, ...]]:
    """The text of the pages, blank line between pages, and where each page starts; contents and index pages
    are left out (their page number still counts)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError(f"{name}: the PDF is encrypted")
        pages = [clean_text(page.extract_text() or "").strip() for page in reader.pages]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, RecursionError, OSError) as error:
        raise DocumentError(f"{name}: could not read the PDF ({type(error).__name__}: {error})") from None
    kept = [page if page and not is_contents_or_index_page(page) else "" for page in pages]
    if not any(kept):
        kept = pages  # a PDF that is all lists is still better indexed than refused
    text, starts = "", []
    for page in kept:
        if page and text:
            text += "\n\n"
        starts.append(len(text))
        text += page
    return text, tuple(starts)


def docx_to_text(data: bytes, name: str) -> str:
    """Paragraphs and table rows in document order (python-docx)."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        parts = []
        for block in document.element.body.iterchildren():
            tag = block.tag.rsplit("}", 1)[-1]
            if tag == "p":
                parts.append(Paragraph(block, document).text)
            elif tag == "tbl":
                parts.extend(" | ".join(cell.text.strip() for cell in row.cells)
                             for row in Table(block, document).rows)
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise DocumentError(f"{name}: could not read the Word document ({type(error).__name__}: {error})") from None
    except Exception as error:  # noqa: BLE001  lxml's parse errors, from an untrusted file
        raise DocumentError(f"{name}: could not read the Word document ({type(error).__name__})") from None
    return "\n\n".join(p.strip() for p in parts if p.strip())


def document_from_bytes(doc_id: str, data: bytes, max_bytes: int, source: str = "") -> Document:
    suffix = PurePosixPath(doc_id).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise DocumentError(f"{doc_id}: unsupported file type {suffix or '(none)'!r}; supported: {supported}")
    if len(data) > max_bytes:
        raise size_error(doc_id, len(data), max_bytes)
    if not data.strip():
        raise DocumentError(f"{doc_id}: the file is empty")
    if suffix in PDF_SUFFIXES:
        if not data.startswith(b"%PDF"):
            raise DocumentError(f"{doc_id}: not a PDF file (no %PDF header)")
        text, pages = pdf_to_text(data, doc_id)
        return make_document(doc_id, text, source, pages)
    if suffix in DOCX_SUFFIXES:
        text = docx_to_text(data, doc_id)
    else:
        text = decode_text(data, doc_id)
        if suffix in HTML_SUFFIXES:
            text = html_to_text(text)
    return make_document(doc_id, text, source)


def load_file(path: str | Path, root: str | Path | None = None, max_bytes: int = 20 * 1024 * 1024) -> Document:
    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"{path}: no such file")
    doc_id = path.relative_to(root).as_posix() if root else path.name
    size = path.stat().st_size
    if size > max_bytes:  # refuse before reading a huge file into memory
        raise size_error(doc_id, size, max_bytes)
    return document_from_bytes(doc_id, path.read_bytes(), max_bytes, source=str(path))


def iter_corpus_files(paths: list[str | Path]) -> list[tuple[Path, Path]]:
    """(file, root) pairs: a folder contributes its supported files, recursively; a file stands for itself."""
    found: list[tuple[Path, Path]] = []
    for entry in paths:
        entry = Path(entry)
        if entry.is_dir():
            for file in sorted(entry.rglob("*")):
                if file.is_file() and not file.is_symlink() and file.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.append((file, entry))
        elif entry.is_file():
            found.append((entry, entry.parent))
        else:
            raise DocumentError(f"{entry}: no such file or folder")
    return found


def load_corpus(paths: list[str | Path], max_bytes: int = 20 * 1024 * 1024) -> tuple[list[Document], list[str]]:
    """Every readable document under `paths`, and one message per file that was skipped."""
    documents, problems = [], []
    seen: set[str] = set()
    for file, root in iter_corpus_files(paths):
        try:
            document = load_file(file, root, max_bytes)
        except DocumentError as error:
            problems.append(str(error))
            continue
        if document.id in seen:
            problems.append(f"{document.id}: a document with this id is already loaded; skipped {file}")
            continue
        seen.add(document.id)
        documents.append(document)
    return documents, problems
