"""Word, reStructuredText and paged PDF documents: upload, ask, remove, and the page an answer stands on."""

from __future__ import annotations

import io

import pytest

from qa.load import document_from_bytes, is_contents_or_index_page

LIMIT = 20 * 1024 * 1024
CONTENTS = ["Contents", "1 The colony .......................... 2", "2 Feeding ............................. 3",
            "2.1 Fish ............................... 3", "2.2 Reed beds ........................... 3",
            "3 Winter ............................. 3", "Index .............................. 4"]
COLONY = ["The colony", "The heron colony at Hornborga lake was founded in 1952 by the ornithologist Karin Lund.",
          "It grew to four hundred nests within ten years, and the lake became a reserve in 1965."]
FEEDING = ["Feeding", "The herons of Hornborga feed mainly on roach and perch caught in the shallow reed beds.",
           "Most of them leave for the coast of Portugal when the lake freezes in December."]
INDEX = ["Index", "colony, 2", "feeding, 3", "Hornborga, 2-3", "Lund, Karin, 2", "perch, 3", "roach, 3",
         "reed beds, 3", "reserve, 2", "winter, 3"]


def pdf_pages(pages: list[list[str]]) -> bytes:
    """A real multi-page PDF written by fpdf2: one line of text per entry."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for lines in pages:
        pdf.add_page()
        for line in lines:
            pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def docx_bytes(paragraphs: list[str], table: list[list[str]]) -> bytes:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for row, values in zip(grid.rows, table):
        for cell, value in zip(row.cells, values):
            cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_contents_and_index_pages_are_told_from_body_pages():
    assert is_contents_or_index_page("\n".join(CONTENTS))
    assert is_contents_or_index_page("\n".join(INDEX))
    assert not is_contents_or_index_page("\n".join(COLONY + FEEDING))
    # Body text whose wrapped lines happen to end in numbers (years) stays in.
    prose = ["The reserve was extended in", "1965 and again in", "1978, when the water level was raised by",
             "0.85 metres over", "1,200 hectares; the count of", "1990 gave 412 nests in", "all parts of the lake."]
    assert not is_contents_or_index_page("\n".join(prose))


def test_pdf_keeps_page_numbers_and_leaves_out_contents_and_index():
    document = document_from_bytes("herons.pdf", pdf_pages([CONTENTS, COLONY, FEEDING, INDEX]), LIMIT)
    assert "...." not in document.text and "Lund, Karin" not in document.text
    assert len(document.pages) == 4
    assert document.page_of(document.text.index("Karin Lund")) == 2
    assert document.page_of(document.text.index("roach and perch")) == 3
    assert document_from_bytes("notes.txt", b"Karin Lund founded it.", LIMIT).page_of(0) is None


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    """The shipped reader over an empty corpus in a private index."""
    from qa import QA

    return QA(index_dir=str(tmp_path_factory.mktemp("formats_index")), corpus=[])


def test_pdf_answer_carries_its_page(bot):
    doc_id = bot.add_bytes("herons.pdf", pdf_pages([CONTENTS, COLONY, FEEDING, INDEX]))
    try:
        answer = bot.ask("What do the herons of Hornborga feed on?")
        assert answer.found and "roach and perch" in answer.text and answer.page == 3
        assert "herons.pdf p. 3 [" in answer.where() and answer.to_dict()["page"] == 3
        answer = bot.ask("Who founded the heron colony at Hornborga?")
        assert answer.found and "Karin Lund" in answer.text and answer.page == 2
    finally:
        bot.remove(doc_id)


@pytest.mark.parametrize("name, data, question, expected", [
    ("colony.docx", docx_bytes(COLONY[1:], [["Bird", "Nests"], ["Grey heron", "412"]]),
     "Who founded the heron colony at Hornborga?", "Karin Lund"),
    ("feeding.rst", ("Feeding\n=======\n\n" + " ".join(FEEDING[1:]) + "\n\n.. note:: Counted in 1990.\n").encode(),
     "What do the herons of Hornborga feed on?", "roach and perch"),
])
def test_docx_and_rst_round_trip_through_upload_ask_and_remove(bot, name, data, question, expected):
    doc_id = bot.add_bytes(name, data)
    assert doc_id == name and [d.id for d in bot.documents()] == [name]
    answer = bot.ask(question)
    assert answer.found and expected in answer.text and answer.document == name and answer.page is None
    bot.remove(name)
    assert bot.documents() == [] and not bot.ask(question).found


def test_docx_table_rows_are_text():
    document = document_from_bytes("t.docx", docx_bytes(["Nest counts."], [["Bird", "Nests"], ["Grey heron", "412"]]),
                                   LIMIT)
    assert document.text == "Nest counts.\n\nBird | Nests\n\nGrey heron | 412"


def test_a_broken_docx_is_refused_with_a_message():
    from qa.load import DocumentError

    with pytest.raises(DocumentError, match="broken.docx: could not read the Word document"):
        document_from_bytes("broken.docx", b"PK\x03\x04 not really a zip", LIMIT)


def test_page_starts_survive_the_saved_index():
    import json
    from dataclasses import asdict

    from qa.load import Document

    document = document_from_bytes("herons.pdf", pdf_pages([CONTENTS, COLONY, FEEDING, INDEX]), LIMIT)
    again = Document(**json.loads(json.dumps(asdict(document))))  # as qa.index writes and reads it
    assert again == document and again.page_of(again.text.index("roach")) == 3
