"""The web chat (Gradio): ask, see the quote highlighted in its passage, manage the indexed documents."""

from __future__ import annotations

import argparse
import html
import logging
import re
import sys
from pathlib import Path

from qa.answer import QA, Answer, QuestionError
from qa.index import IndexMismatchError, IndexWriteError, StoreUnavailableError
from qa.load import SUPPORTED_SUFFIXES, DocumentError, megabytes, safe_document_id, size_error

log = logging.getLogger("qa.web")

EXAMPLES = [
    "Who chaired the session?",
    "When did Taliban fighters sweep into Kabul?",
    "Which countries are members of the CSTO?",
    "Who attended the meeting as a guest?",
    "Who won the 2018 World Cup?",
]

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def as_text(value: str) -> str:
    """Untrusted text for a Markdown line of the chat: shown literally, never interpreted as Markdown or HTML."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(value, quote=False)).replace("\n", "<br>")


def as_html(value: str) -> str:
    """Untrusted text inside an HTML block (where Markdown is not applied): escaped, line breaks kept."""
    return html.escape(value, quote=True).replace("\n", "<br>")


def render_alternatives(answer: Answer) -> str:
    """The next-best answers of an unsure one, each with its confidence and place."""
    if not answer.alternatives:
        return ""
    items = "".join(f"\n- {as_text(a.text)} ({a.score:.0%}; {as_text(a.document)}, characters {a.start}–{a.end})"
                    for a in answer.alternatives)
    return f"\n\nOther possible answers:{items}"


def render_answer(answer: Answer) -> str:
    if answer.found:
        local_start = answer.start - answer.context_start
        local_end = answer.end - answer.context_start
        passage = (as_html(answer.context[:local_start]) + '<mark class="answer">' +
                   as_html(answer.context[local_start:local_end]) + "</mark>" + as_html(answer.context[local_end:]))
        band = "" if answer.confident else "Unsure: check the passage. "
        return (f"**{as_text(answer.text)}**\n\n"
                f"{band}Confidence: **{answer.score:.0%}** · source: {as_text(answer.document)} "
                f"({f'p. {answer.page}, ' if answer.page else ''}characters {answer.start}–{answer.end})\n\n"
                f'<div class="passage">{passage}</div>' + ("" if answer.confident else render_alternatives(answer)))
    reason = as_text(answer.message) if answer.message else "The documents do not seem to hold the answer."
    lines = [f"**Not found in the documents.** {reason}"]
    if answer.passages:
        lines.append(f"\n\nBest guess confidence: {answer.score:.0%}. The closest passages:")
        for passage in answer.passages[:2]:
            lines.append(f'\n\n<div class="passage">{as_html(passage.text)}</div>'
                         f"\n\n— {as_text(passage.document)} (characters {passage.start}–{passage.end})")
    return "".join(lines)


def document_table(bot: QA) -> list[list]:
    counts = bot.store.chunk_counts()
    return [[d.id, len(d.text), counts.get(d.id, 0)] for d in bot.documents()]


CSS = """
.passage {border-left: 3px solid #9bb5d6; padding: 4px 10px; background: #f7f9fc; color: #222;
          white-space: normal; font-size: 0.95em}
mark.answer {background: #ffe066; color: #000; padding: 0 2px; border-radius: 2px; font-weight: 600}
footer {display: none !important}
"""


def _update(**changes):
    import gradio as gr

    return gr.update(**changes)


def _documents_view(bot: QA):
    """The document table and both dropdowns as they are now; nothing is preselected. Left as they are while the
    store cannot be reached (the status line says why)."""
    try:
        table = document_table(bot)  # reads every document once; the dropdown takes its ids from it
        return (table, _update(choices=[row[0] for row in table], value=None),
                _update(choices=bot.removed(), value=None))
    except StoreUnavailableError:
        return _update(), _update(), _update()


def _wait_for_indexing(bot: QA) -> bool:
    """A question sent while an upload is being indexed waits for it, so the new document can answer it."""
    return bot.library.wait_for_changes()


class ChatActions:
    """What the chat's buttons do, one method per event (build_app wires them to the page)."""

    def __init__(self, bot: QA):
        self.bot = bot

    def respond(self, message: str, history: list, turns: list):
        history, turns = list(history or []), list(turns or [])
        history.append({"role": "user", "content": as_text(message or "")})
        waited = _wait_for_indexing(self.bot)
        try:
            answer = self.bot.ask(message or "", history=turns)
            reply = render_answer(answer)
            if answer.question != " ".join((message or "").split()):
                reply = f"*Read as: {as_text(answer.question)}*\n\n" + reply
            turns.append((answer.question if answer.found else message, answer.text))
        except (QuestionError, StoreUnavailableError) as error:
            reply = f"⚠️ {as_text(str(error))}"
        if waited:
            reply = "*(Waited for the upload to finish indexing.)*\n\n" + reply
        history.append({"role": "assistant", "content": reply})
        return history, "", turns[-5:]

    def ask_api(self, question: str) -> dict:
        """JSON answer for programs (gradio_client: client.predict(question, api_name="/ask"))."""
        try:
            return self.bot.ask(question).to_dict()
        except (QuestionError, StoreUnavailableError) as error:
            return {"question": question, "error": str(error), "found": False, "text": "", "score": 0.0}

    def upload(self, files):
        names = [safe_document_id(Path(f if isinstance(f, str) else f.name).name) for f in files or []]
        yield ("⏳ indexing " + ", ".join(as_text(n) for n in names) + "…") if names else "No file chosen.", \
            *_documents_view(self.bot), _update()
        messages = []
        for file, name in zip(files or [], names):
            path = Path(file if isinstance(file, str) else file.name)
            try:
                if path.stat().st_size > self.bot.config.max_file_bytes:
                    raise size_error(name, path.stat().st_size, self.bot.config.max_file_bytes)
                doc_id = self.bot.add_bytes(name, path.read_bytes())
                messages.append(f"✅ added {as_text(doc_id)}")
            except (DocumentError, IndexWriteError, StoreUnavailableError) as error:
                messages.append(f"⚠️ {as_text(str(error))}")
        if names:
            yield "<br>".join(messages), *_documents_view(self.bot), None

    def ask_removal(self, document_id: str | None):
        """Removing asks first: the Confirm button appears, named after the document."""
        if not document_id:
            return "Choose a document to remove.", _update(visible=False), _update(visible=False)
        return (f"Remove **{as_text(document_id)}** from the index? Press *Confirm removal* to go on.",
                _update(value=f"Confirm removal of {document_id}", visible=True), _update(visible=True))

    def remove(self, document_id: str | None):
        hidden = _update(visible=False)
        if not document_id:
            return "Choose a document to remove.", *_documents_view(self.bot), hidden, hidden
        try:
            self.bot.remove(document_id)
            message = f"🗑️ removed {as_text(document_id)}"
            if document_id in self.bot.removed():
                message += " (it can be restored below)"
        except (KeyError, IndexWriteError, StoreUnavailableError) as error:
            message = f"⚠️ {as_text(str(error).strip(chr(39)))}"
        return message, *_documents_view(self.bot), hidden, hidden

    def cancel_removal(self):
        return "Nothing removed.", *_documents_view(self.bot), _update(visible=False), _update(visible=False)

    def restore(self, document_id: str | None):
        if not document_id:
            return "Choose a removed document to restore.", *_documents_view(self.bot)
        try:
            message = f"♻️ restored {as_text(self.bot.restore(document_id))}"
        except (KeyError, DocumentError, IndexWriteError, StoreUnavailableError) as error:
            message = f"⚠️ {as_text(str(error).strip(chr(39)))}"
        return message, *_documents_view(self.bot)


def build_app(bot: QA):
    import gradio as gr

    actions = ChatActions(bot)
    with gr.Blocks(title="Ask your documents") as app:
        gr.Markdown("## Ask your documents\nAnswers are exact quotes from the indexed documents, with how sure "
                    "the reader is. When the documents do not hold the answer, it says so. Follow-up questions "
                    "(\"Which country is he from?\") are read against the previous question. Runs offline.")
        turns = gr.State([])  # (question as read, answer text) of this browser session, for follow-ups
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                chat = gr.Chatbot(label="Chat", height=520, elem_id="chat", sanitize_html=True,
                                  feedback_options=None, buttons=["copy"])
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask a question about the documents…", show_label=False,
                                          scale=5, min_width=200, elem_id="question", max_length=20000)
                    send = gr.Button("Ask", variant="primary", scale=1, min_width=70, elem_id="ask")
                gr.Examples(EXAMPLES, inputs=question, label="Example questions")
            with gr.Column(scale=2, min_width=280):
                gr.Markdown("### Documents")
                table = gr.Dataframe(value=document_table(bot), headers=["document", "characters", "chunks"],
                                     interactive=False, elem_id="documents", wrap=True)
                files = gr.File(label=f"Add documents ({' '.join(sorted(SUPPORTED_SUFFIXES))}; up to "
                                f"{megabytes(bot.config.max_file_bytes)} each)", file_count="multiple",
                                file_types=sorted(SUPPORTED_SUFFIXES), elem_id="upload")
                status = gr.Markdown(elem_id="status")
                with gr.Row():
                    chosen = gr.Dropdown(choices=[], value=None, label="Remove a document",
                                         elem_id="remove-choice", scale=3)
                    drop = gr.Button("Remove", variant="stop", scale=1, min_width=80, elem_id="remove")
                with gr.Row():
                    confirm = gr.Button("Confirm removal", variant="stop", visible=False, elem_id="confirm-remove")
                    cancel = gr.Button("Cancel", visible=False, elem_id="cancel-remove")
                with gr.Row():
                    removed = gr.Dropdown(choices=[], value=None, label="Restore a removed corpus document",
                                          elem_id="restore-choice", scale=3)
                    bring_back = gr.Button("Restore", scale=1, min_width=80, elem_id="restore")
        view = [table, chosen, removed]
        app.load(lambda: _documents_view(bot), None, view, api_visibility="private")
        question.submit(actions.respond, [question, chat, turns], [chat, question, turns], api_name="chat")
        send.click(actions.respond, [question, chat, turns], [chat, question, turns], api_visibility="private")
        files.upload(actions.upload, files, [status, *view, files], api_name="upload")
        drop.click(actions.ask_removal, chosen, [status, confirm, cancel], api_visibility="private")
        # Another choice after pressing Remove withdraws the question: Confirm never removes what was not named.
        chosen.change(lambda: (_update(visible=False), _update(visible=False)), None, [confirm, cancel],
                      api_visibility="private")
        confirm.click(actions.remove, chosen, [status, *view, confirm, cancel], api_name="remove")
        cancel.click(actions.cancel_removal, None, [status, *view, confirm, cancel], api_visibility="private")
        bring_back.click(actions.restore, removed, [status, *view], api_name="restore")
        gr.api(actions.ask_api, api_name="ask")
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Web chat over your documents.")
    parser.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--share", action="store_true", help="public Gradio link (needs network; off by default)")
    parser.add_argument("--corpus", nargs="*", help="documents to index (default: seeds/)")
    parser.add_argument("--index", help="index folder (default: index/)")
    parser.add_argument("--store", help="postgresql://user@host/db: the index in PostgreSQL (default: QA_STORE)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes, one line each
    overrides = {"index_dir": args.index, "store": args.store, "corpus": args.corpus, "host": args.host,
                 "port": args.port}
    if args.share:
        overrides["share"] = True
    try:
        bot = QA(**overrides)
    except (StoreUnavailableError, IndexMismatchError, IndexWriteError) as error:
        print(f"error: {error}", file=sys.stderr)  # one line, as the CLI does: no traceback for a setting
        return 2
    for problem in bot.problems:
        log.warning(problem)
    app = build_app(bot)
    app.queue(default_concurrency_limit=4)
    print(f"Serving on http://{bot.config.host}:{bot.config.port}", flush=True)
    app.launch(server_name=bot.config.host, server_port=bot.config.port, share=bot.config.share,
               # Gradio's own cap (in its own wording) only stops uploads far over the limit from filling the
               # disk; the upload handler refuses the rest with the project's message.
               max_file_size=4 * bot.config.max_file_bytes, show_error=True, css=CSS)
    return 0
