"""The index catalog's SQLite tables (qa.segments writes and reads them), and documents read back from rows."""

from __future__ import annotations

from qa.load import Document

def document_from_row(row) -> Document:
    """A Document from (id, text, sha256, source, pages), pages stored as comma-separated start offsets."""
    document_id, text, sha256, source, pages = row
    return Document(document_id, text, sha256, source, tuple(int(p) for p in pages.split(",")) if pages else ())


# chunks.segment and tombstones.segment name the segment a row was first written to; merges leave them as they
# are (rewriting every chunk row of the merged segments would hold the store lock for long at scale).
SCHEMA = """
create table if not exists meta(key text primary key, value text not null);
create table if not exists documents(id text primary key, sha256 text not null, source text not null,
                                     text text not null, size integer not null, mtime integer not null,
                                     pages text not null default '');
create index if not exists documents_sha256 on documents(sha256);
create table if not exists chunks(n integer primary key, id text not null, document text not null,
                                  start integer not null, end integer not null, text text not null,
                                  segment text not null);
create index if not exists chunks_document on chunks(document);
create table if not exists segments(name text primary key, rows integer not null, bytes integer not null,
                                    sha256 text not null);
create table if not exists tombstones(n integer primary key, segment text not null);
create table if not exists excluded(id text primary key);
create virtual table if not exists lexical using fts5(tokens, tokenize="unicode61 remove_diacritics 0 tokenchars '_'");
"""
