"""Load documents (.txt, .md, .html, .pdf) into plain text with a stable id and a content hash."""

from __future__ import annotations

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
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES


class DocumentError(ValueError):
    """A file that cannot become a document; the message says why, in words a user understands."""


@dataclass(frozen=True)
class Document:
    id: str  # path relative to the corpus root, posix style: stable across machines
    text: str
    sha256: str
    source: str = ""  # where it was read from, for display only


def make_document(doc_id: str, text: str, source: str = "") -> Document:
    text = clean_text(text)
    if not text.strip():
        raise DocumentError(f"{doc_id}: the document is empty (no text to index)")
    return Document(id=doc_id, text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), source=source)


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


def pdf_to_text(data: bytes, name: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError(f"{name}: the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, RecursionError, OSError) as error:
        raise DocumentError(f"{name}: could not read the PDF ({type(error).__name__}: {error})") from None
    return "\n\n".join(p.strip() for p in pages if p.strip())


def document_from_bytes(doc_id: str, data: bytes, max_bytes: int, source: str = "") -> Document:
    suffix = PurePosixPath(doc_id).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise DocumentError(f"{doc_id}: unsupported file type {suffix or '(none)'!r}; supported: {supported}")
    if len(data) > max_bytes:
        raise DocumentError(f"{doc_id}: file is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
    if not data.strip():
        raise DocumentError(f"{doc_id}: the file is empty")
    if suffix in PDF_SUFFIXES:
        if not data.startswith(b"%PDF"):
            raise DocumentError(f"{doc_id}: not a PDF file (no %PDF header)")
        text = pdf_to_text(data, doc_id)
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
        raise DocumentError(f"{doc_id}: file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
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
