# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""Raw text to words for tagging: whitespace-separated tokens with punctuation
split off (as CoNLL corpora are tokenised), with each word's character offsets."""

import unicodedata
from typing import List, Tuple


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def split_words(text: str) -> Tuple[List[str], List[Tuple[int, int]]]:
    """Words of a raw sentence as NER corpora tokenise them, with character spans:
    whitespace-separated tokens, with leading and trailing punctuation split off
    (``"Nairobi,"`` -> ``Nairobi`` ``,``); punctuation inside a token (``U.S.``,
    ``don't``) and combining marks stay in the word."""
    words, spans = [], []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        a, b = i, j
        while a < b and _is_punct(text[a]):
            words.append(text[a])
            spans.append((a, a + 1))
            a += 1
        tail = []
        while b > a and _is_punct(text[b - 1]):
            tail.append((text[b - 1], (b - 1, b)))
            b -= 1
        if a < b:
            words.append(text[a:b])
            spans.append((a, b))
        for w, s in reversed(tail):
            words.append(w)
            spans.append(s)
        i = j
    return words, spans
