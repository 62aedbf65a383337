"""Test text for the MapReduce tests: Zipf-distributed words with what `str.split()` must get
right (Unicode words, a combining accent, tabs, ideographic spaces, runs of spaces, empty lines)
and, when asked, one huge word."""

from __future__ import annotations

import random
from pathlib import Path


def zipf_lines(rng: random.Random, words: int, *, huge_word: bool = False) -> list[str]:
    """About `words` words in lines of ~12, drawn with Zipf weights from 3000 words; with
    `huge_word` a 10,000-character word is among the rare ones."""
    vocab = [f"w{i}" for i in range(3000)] + ["été", "naïve", "字", "😀x", "e\u0301"]
    if huge_word:
        vocab[2500] = "x" * 10_000
    weights = [1 / (i + 1) for i in range(len(vocab))]
    chosen = rng.choices(vocab, weights, k=words)
    lines, line = [], []
    for w in chosen:
        line.append(w)
        if rng.random() < 0.08:
            lines.append(rng.choice([" ", "\t", "\u3000", "  "]).join(line))
            line = []
            if rng.random() < 0.05:
                lines.append("")
    lines.append(" ".join(line))
    return lines


def write_zipf(path: Path, rng: random.Random, words: int, *, huge_word: bool = False) -> str:
    """Writes `zipf_lines` to `path` as UTF-8 lines and returns the text."""
    text = "\n".join(zipf_lines(rng, words, huge_word=huge_word)) + "\n"
    path.write_text(text, encoding="utf-8")
    return text
