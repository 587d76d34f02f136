
import pytest

from qa.load import DocumentError, document_from_bytes, html_to_text, load_corpus, load_file, safe_document_id

LIMIT = 20 * 1024 * 1024


def make_pdf(lines: list[str]) -> bytes:
    """A minimal valid one-page PDF whose text pypdf can extract."""
    text_ops = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td {text_ops} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_text_and_markdown_keep_their_text_and_get_stable_ids(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("Alpha is the first letter.\r\nSecond line.", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# Title\n\nBeta *is* second.", encoding="utf-8")
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01")  # unsupported suffix: not even tried
    documents, problems = load_corpus([tmp_path])
    assert [d.id for d in documents] == ["a.txt", "sub/b.md"]
    assert documents[0].text == "Alpha is the first letter.\nSecond line."  # line ends unified
    assert documents[1].text == "# Title\n\nBeta *is* second."
    assert len(documents[0].sha256) == 64 and documents[0].sha256 != documents[1].sha256
    assert problems == []
    again, _ = load_corpus([tmp_path])
    assert [d.sha256 for d in again] == [d.sha256 for d in documents]


def test_html_gives_visible_text_only():
    page = (b"<html><head><title>T</title><style>p{color:red}</style><script>alert('x')</script></head>"
            b"<body><h1>Heading</h1><p>First &amp; <b>bold</b> paragraph.</p><div>Second</div></body></html>")
    document = document_from_bytes("page.html", page, LIMIT)
    assert "alert" not in document.text and "color" not in document.text
    assert "Heading" in document.text and "First & bold paragraph." in document.text and "Second" in document.text


def test_deeply_nested_and_malformed_html_is_read_without_crashing():
    deep = "<div>" * 100_000 + "deep text" + "</div>" * 100_000
    assert html_to_text(deep) == "deep text"
    broken = "<p>unclosed <b>bold <i>italic</p></div></span><<>>< p>tail & more"
    text = html_to_text(broken)
    assert "unclosed" in text and "tail & more" in text


def test_pdf_text_is_extracted():
    document = document_from_bytes("report.pdf", make_pdf(["The treaty was signed in 1992.", "Second line here."]), LIMIT)
    assert "The treaty was signed in 1992." in document.text
    assert "Second line here." in document.text


@pytest.mark.parametrize("data", [b"%PDF-1.4\n1 0 obj << /Type /Catalog", b"%PDF-" + b"\xff" * 500,
                                  b"%PDF-1.4\n" + b"[" * 50_000])
def test_malformed_pdf_is_a_clear_error(data):
    with pytest.raises(DocumentError, match="report.pdf"):
        document_from_bytes("report.pdf", data, LIMIT)


def test_pdf_suffix_without_pdf_content_is_refused():
    with pytest.raises(DocumentError, match="not a PDF"):
        document_from_bytes("fake.pdf", b"just text", LIMIT)


@pytest.mark.parametrize("name,data,message", [
    ("empty.txt", b"", "empty"),
    ("blank.txt", b"   \n\t\n", "empty"),
    ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary"),
    ("latin1.txt", "Café au lait, naïve façade".encode("latin-1"), "not UTF-8"),
    ("program.exe", b"MZ\x90\x00", "unsupported file type"),
    ("archive.zip", b"PK\x03\x04", "unsupported file type"),
    ("noext", b"hello", "unsupported file type"),
    ("empty.html", b"<html><script>x()</script></html>", "empty"),
])
def test_bad_files_are_refused_with_a_clear_message(name, data, message):
    with pytest.raises(DocumentError, match=message):
        document_from_bytes(name, data, LIMIT)


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(LIMIT + 1)  # sparse: no need to write 20 MB
    with pytest.raises(DocumentError, match=r"^big.txt: the file is over the 20 MB size limit \(20,971,521 bytes\)$"):
        load_file(big, max_bytes=LIMIT)
    with pytest.raises(DocumentError, match="over the 0 MB size limit .101 bytes"):
        document_from_bytes("small.txt", b"x" * 101, max_bytes=100)


def test_utf16_with_bom_and_utf8_bom_are_decoded():
    assert document_from_bytes("a.txt", "\ufeffhello".encode("utf-8"), LIMIT).text == "hello"
    assert document_from_bytes("b.txt", "hello world".encode("utf-16"), LIMIT).text == "hello world"


def test_control_characters_are_blanked_without_moving_text():
    document = document_from_bytes("c.txt", b"a\x07b\x1bc\td\ne", LIMIT)
    assert document.text == "a b c\td\ne"


@pytest.mark.parametrize("name,expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system.ini", "system.ini"),
    ("/abs/path/report.txt", "report.txt"),
    ("we<ird>|na:me?.md", "we_ird__na_me_.md"),
])
def test_upload_names_cannot_escape(name, expected):
    assert safe_document_id(name) == expected


@pytest.mark.parametrize("name", ["..", "/", "...", ""])
def test_unusable_upload_names_are_refused(name):
    with pytest.raises(DocumentError):
        safe_document_id(name)


def test_a_corpus_with_bad_files_loads_the_good_ones_and_says_which_were_skipped(tmp_path):
    (tmp_path / "good.txt").write_text("Good text.")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin.txt").write_bytes("é".encode("latin-1") * 10)
    documents, problems = load_corpus([tmp_path])
    assert [d.id for d in documents] == ["good.txt"]
    assert len(problems) == 2 and any("empty.txt" in p for p in problems) and any("latin.txt" in p for p in problems)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DocumentError, match="no such file"):
        load_corpus([tmp_path / "nope"])
