"""Split documents into token-measured, overlapping chunks that end on sentence boundaries where possible."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from qa.load import Document


@dataclass(frozen=True)
class Chunk:
    id: str  # "<document id>#<n>"
    document: str
    start: int  # character span in the document's text: document.text[start:end] == text
    end: int
    text: str


# A sentence starts after . ! ? (and closing quotes/brackets) plus whitespace, or after a line break.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?\u2026])[\"'\u2019\u201d)\]]*\s+|\n\s*")


class Chunker:
    def __init__(self, tokenizer, max_tokens: int = 160, overlap_tokens: int = 32):
        if max_tokens < 8:
            raise ValueError("chunk size must be at least 8 tokens")
        if not 0 <= overlap_tokens < max_tokens // 2:
            raise ValueError("chunk overlap must be between 0 and half the chunk size")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def settings(self) -> dict:
        return {"max_tokens": self.max_tokens, "overlap_tokens": self.overlap_tokens, "splitter": "sentence-v1"}

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        # Long texts are tokenised in slices so the tokenizer never sees one enormous string.
        spans: list[tuple[int, int]] = []
        step = 100_000
        position = 0
        while position < len(text):
            end = min(len(text), position + step)
            if end < len(text):  # cut at whitespace so no word is split between slices
                space = text.rfind(" ", position + step // 2, end)
                newline = text.rfind("\n", position + step // 2, end)
                cut = max(space, newline)
                end = cut + 1 if cut > 0 else end
            encoded = self.tokenizer(text[position:end], add_special_tokens=False, return_offsets_mapping=True,
                                     verbose=False)
            spans.extend((a + position, b + position) for a, b in encoded["offset_mapping"] if b > a)
            position = end
        return spans

    def split(self, document: Document) -> list[Chunk]:
        text = document.text
        spans = self.token_spans(text)
        if not spans:
            return []
        token_starts = [a for a, _ in spans]
        # Token indices where a sentence begins: the preferred places to cut.
        boundaries = sorted({bisect.bisect_left(token_starts, m.end()) for m in _SENTENCE_BREAK.finditer(text)}
                            - {0, len(spans)})

        def inside_word(i: int) -> bool:  # token i continues the word before it (a "##piece")
            return 0 < i < len(spans) and spans[i][0] == spans[i - 1][1] and text[spans[i][0]].isalnum() \
                and text[spans[i][0] - 1].isalnum()

        chunks: list[Chunk] = []
        position, n = 0, len(spans)
        while position < n:
            end = min(position + self.max_tokens, n)
            if end < n:
                # Last sentence start inside the window, if it keeps the chunk at least half full.
                i = bisect.bisect_right(boundaries, end) - 1
                if i >= 0 and boundaries[i] > position + self.max_tokens // 2:
                    end = boundaries[i]
                while end - 1 > position and inside_word(end):  # never cut a word in two
                    end -= 1
            start_char, end_char = spans[position][0], spans[end - 1][1]
            chunks.append(Chunk(f"{document.id}#{len(chunks)}", document.id, start_char, end_char,
                                text[start_char:end_char]))
            if end >= n:
                break
            # Overlap: begin the next chunk at the first sentence start within the overlap, else mid-sentence.
            lowest = max(end - self.overlap_tokens, position + 1)
            j = bisect.bisect_left(boundaries, lowest)
            position = boundaries[j] if j < len(boundaries) and boundaries[j] < end else lowest
            while position < end - 1 and inside_word(position):
                position += 1
        return chunks
