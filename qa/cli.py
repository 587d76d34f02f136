"""The `qa` command: ask, index, eval, serve, train, export."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


class CliError(Exception):
    """A user mistake: printed as one line on stderr, exit status 2, no traceback."""


def _require_index(args) -> None:
    """`ask` and `eval` read an index: a mistyped --index must not silently create an empty one."""
    from qa.index import IndexStore

    if getattr(args, "corpus", None):
        _check_paths(args.corpus)
    if args.index and not args.store and not getattr(args, "corpus", None) and not IndexStore(args.index).exists():
        raise CliError(f"no index in {args.index}: build one with `qa index FILES --index {args.index}` "
                       "(or give the documents with --corpus)")


def _check_paths(paths: list[str]) -> None:
    """Every named path exists and holds something indexable; checked before anything is written."""
    from qa.load import SUPPORTED_SUFFIXES, iter_corpus_files

    supported = " ".join(sorted(SUPPORTED_SUFFIXES))
    for path in paths:
        if not Path(path).exists():
            raise CliError(f"{path}: no such file or folder")
        if Path(path).is_file() and Path(path).suffix.lower() not in SUPPORTED_SUFFIXES:
            raise CliError(f"{path}: unsupported file type; supported: {supported}")
        if not iter_corpus_files([path]):
            raise CliError(f"{path}: no supported files in this folder (supported: {supported})")


def _bot(args, corpus: list[str] | None = None):
    from qa.answer import QA

    overrides = {"index_dir": args.index, "store": args.store, "reader": args.reader, "top_k": args.top_k,
                 "threshold": args.threshold}
    if corpus is not None:
        overrides["corpus"] = corpus
    elif getattr(args, "corpus", None):
        overrides["corpus"] = args.corpus
    elif args.index or args.store:  # an explicit index holds its own documents: don't mix the seed corpus into it
        overrides["corpus"] = []
    return QA(**overrides)


def highlight(answer) -> str:
    """The passage with the answer marked »like this«, for terminals."""
    if not answer.found:
        return ""
    local_start = answer.start - answer.context_start
    local_end = answer.end - answer.context_start
    return answer.context[:local_start] + "»" + answer.context[local_start:local_end] + "«" + answer.context[local_end:]


def cmd_ask(args) -> int:
    from qa.answer import QuestionError

    _require_index(args)
    bot = _bot(args)
    try:
        answer = bot.ask(args.question)
    except QuestionError as error:
        raise CliError(str(error)) from None
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=1))
    elif answer.found:
        print(answer.text)
        print(f"confidence {answer.score:.0%}{'' if answer.confident else ' (unsure)'} · {answer.where()}")
        print(highlight(answer))
        if not answer.confident:
            for alternative in answer.alternatives:
                print(f"  or: {alternative.text} ({alternative.score:.0%}, {alternative.document} "
                      f"[{alternative.start}:{alternative.end}])")
    else:
        print(answer.message or "Not found: the documents do not seem to hold the answer.")
        print(f"(best guess had confidence {answer.score:.0%})")
        for passage in answer.passages[:2]:
            print(f"- {passage.document} [{passage.start}:{passage.end}]: {passage.text[:200]}")
    return 0


def cmd_index(args) -> int:
    from qa.load import iter_corpus_files

    _check_paths(args.paths)
    started = time.perf_counter()
    bot = _bot(args, corpus=args.paths)
    for problem in bot.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    named = {f.relative_to(root).as_posix(): Path(path).is_file() for path in args.paths
             for f, root in iter_corpus_files([path])}
    for doc_id in set(named) & set(bot.index.excluded):
        if named[doc_id]:  # a file named on the command line comes back even if it was removed earlier
            bot.restore(doc_id)
            print(f"restored: {doc_id} (it had been removed)", file=sys.stderr)
        else:
            print(f"skipped: {doc_id} was removed earlier; name the file itself to index it again", file=sys.stderr)
    if not set(named) & set(bot.index.documents):
        raise CliError("nothing was indexed" + (f" ({len(bot.problems)} files skipped, see above)"
                                                 if bot.problems else ""))
    print(f"{len(bot.index.documents)} documents, {len(bot.index.chunks)} chunks in {bot.store.describe()} "
          f"({time.perf_counter() - started:.1f} s)")
    return 0


def cmd_eval(args) -> int:
    from qa.evaluate import read_questions, run_eval
    from qa.report import write_html_report, write_rows

    if not Path(args.questions).is_file():
        raise CliError(f"{args.questions}: no such question file")
    try:
        questions, documents = read_questions(args.questions)
    except (ValueError, KeyError, TypeError, OSError, EOFError) as error:
        detail = str(error) if str(error).startswith(args.questions) else f"{args.questions}: not a question file " \
            f"(expected JSONL rows or SQuAD JSON; {type(error).__name__}: {error})"
        raise CliError(detail) from None
    if not questions:
        raise CliError(f"{args.questions}: holds no questions")
    if args.report:  # fail before a long run, not after it
        import matplotlib  # noqa: F401
    if args.limit:
        questions = questions[: args.limit]
    build_seconds = None
    if documents is not None:  # SQuAD file: its paragraphs are the corpus
        if not args.store:
            args.index = args.index or tempfile.mkdtemp(prefix="qa-eval-index-")
        bot = _bot(args, corpus=[])
        started = time.perf_counter()
        bot.add_documents([d for d in documents if d.id not in bot.index.documents])
        build_seconds = round(time.perf_counter() - started, 2)
    else:
        _require_index(args)
        bot = _bot(args)
    if not bot.index.chunks:
        raise CliError(f"the index in {bot.store.describe()} holds no documents, so every answer would be \"not "
                       "found\"; give the documents with --corpus DIR (or index them first with `qa index`)")
    report = run_eval(bot, questions, batch_size=args.batch_size, progress_file=args.resume_file)
    report.metrics["index_build_seconds"] = build_seconds
    report.metrics["chunks"] = len(bot.index.chunks)
    print(json.dumps(report.metrics, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"metrics": report.metrics}, indent=1))
        write_rows(report.rows, Path(args.json).with_suffix(".rows.json"))
    if args.csv:
        write_rows(report.rows, args.csv)
    if args.report:
        write_html_report(report, args.report, title=f"QA evaluation: {Path(args.questions).name}")
    return 0


def cmd_serve(args) -> int:
    from qa.web import main as serve

    options = (["--host", args.host] if args.host else []) + (["--port", str(args.port)] if args.port else [])
    options += ["--store", args.store] if args.store else []
    return serve(options + (["--share"] if args.share else []))


def cmd_export(args) -> int:
    from qa.training.export import export_reader

    print(export_reader(args.source, args.target, args.dtype))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qa", description="Offline extractive question answering.")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--index", help="index folder (default: index/ over seeds/)")
        p.add_argument("--store", help="postgresql://user@host/db: the index in PostgreSQL (default: QA_STORE, "
                       "else the index folder)")
        p.add_argument("--corpus", nargs="+", help="document folders/files kept in step with the index")
        p.add_argument("--reader", help="reader model: a local folder or a hub id")
        p.add_argument("--top-k", type=int, help="passages given to the reader")
        p.add_argument("--threshold", type=float, help="confidence below which the answer is 'not found'")

    ask = commands.add_parser("ask", help="answer one question")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print the answer as JSON")
    common(ask)
    ask.set_defaults(run=cmd_ask)

    index = commands.add_parser("index", help="index files or folders")
    index.add_argument("paths", nargs="+")
    common(index)
    index.set_defaults(run=cmd_index)

    evaluate = commands.add_parser("eval", help="evaluate on a question set (JSONL or SQuAD JSON)")
    evaluate.add_argument("questions")
    evaluate.add_argument("--json", help="write metrics here (and per-question rows beside it)")
    evaluate.add_argument("--csv", help="write per-question rows as CSV")
    evaluate.add_argument("--report", help="write an HTML report with plots")
    evaluate.add_argument("--batch-size", type=int, default=1, help="questions per ask_many call (1: true latency)")
    evaluate.add_argument("--limit", type=int, default=0, help="only the first N questions")
    evaluate.add_argument("--resume-file", help="append rows here as they finish; rerun to resume")
    common(evaluate)
    evaluate.set_defaults(run=cmd_eval)

    serve = commands.add_parser("serve", help="start the web chat (same as python app.py)")
    serve.add_argument("--host", help="interface to bind (default: QA_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: QA_PORT, else 7860)")
    serve.add_argument("--share", action="store_true", help="ask Gradio for a public link (needs network)")
    serve.add_argument("--store", help="postgresql://user@host/db: the index in PostgreSQL (default: QA_STORE)")
    serve.set_defaults(run=cmd_serve)

    train = commands.add_parser("train", help="fine-tune a reader (see qa/training/)", add_help=False)
    train.set_defaults(run=None)

    export = commands.add_parser("export", help="write a trained reader as compact safetensors")
    export.add_argument("source")
    export.add_argument("target")
    export.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    export.set_defaults(run=cmd_export)

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "train":
        from qa.training.cli import main as train_main

        train_main(argv[1:])
        return 0
    args = parser.parse_args(argv)
    return _run(args)


def _run(args) -> int:
    """Run a command; a user mistake or a refused file becomes one line on stderr (and JSON with --json)."""
    from qa.index import IndexCorruptError, IndexMismatchError, IndexWriteError, StoreUnavailableError
    from qa.load import DocumentError

    try:
        return args.run(args)
    except (CliError, DocumentError, IndexWriteError, IndexCorruptError, IndexMismatchError, StoreUnavailableError,
            KeyError) as error:
        message = str(error).strip("'\"")
    if args.command == "ask" and args.json:
        print(json.dumps({"question": args.question, "error": message, "found": False, "text": ""},
                         ensure_ascii=False, indent=1))
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
