"""Stage 8 (optional): word timestamps from the cross-attention alignment (``Whisper.align``).

The aligner works in window time; every word is then mapped into the speech region that
holds its middle and clamped inside it, so a word can never be timed inside the silence
or noise VAD left out. A first word that the aligner stretches back over a pause is
shortened to twice the median word length, as faster-whisper does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .assemble import RawSegment, text_tokens
from .windows import Window

TOKENS_PER_SECOND = 50


def align_words(
    whisper: Any,
    tokenizer: Any,
    encoded_batch: Any,
    windows: list[Window],
    segments: list[list[RawSegment]],
    frames: list[int],
) -> None:
    """Input: the encoder outputs of windows in one language, their segments and real mel
    frames. Output: ``words`` filled in on every segment (recording time), in place."""
    tokens = [[t for s in segs for t in text_tokens(tokenizer, s)] for segs in segments]
    keep = [i for i, t in enumerate(tokens) if t]
    if not keep:
        return
    import ctranslate2

    arr = np.asarray(encoded_batch)
    batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(arr[keep]))
    results = whisper.align(
        batch, tokenizer.sot_sequence, [tokens[i] for i in keep], [frames[i] for i in keep],
        median_filter_width=7,
    )  # fmt: skip
    for i, res in zip(keep, results, strict=True):
        words = _words(tokenizer, tokens[i], res)
        _place(windows[i], segments[i], words, tokenizer)


def _words(tokenizer: Any, tokens: list[int], res: Any) -> list[dict[str, Any]]:
    """faster-whisper's ``find_alignment`` for one window: words with window times."""
    text_idx = np.array([p[0] for p in res.alignments])
    time_idx = np.array([p[1] for p in res.alignments])
    words, word_tokens = tokenizer.split_to_word_tokens([*tokens, tokenizer.eot])
    if len(word_tokens) <= 1 or not len(text_idx):
        return []
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
    jump_times = time_idx[jumps] / TOKENS_PER_SECOND
    if len(jump_times) < len(bounds):
        return []
    probs = res.text_token_probs
    return [
        {
            "word": w,
            "tokens": wt,
            "start": float(jump_times[b0]),
            "end": float(jump_times[b1]),
            "probability": float(np.mean(probs[b0:b1])) if b1 > b0 else 0.0,
        }
        for w, wt, b0, b1 in zip(words[:-1], word_tokens[:-1], bounds[:-1], bounds[1:], strict=True)
    ]


def _place(
    window: Window, segments: list[RawSegment], words: list[dict[str, Any]], tokenizer: Any
) -> None:
    durations = np.array([w["end"] - w["start"] for w in words])
    durations = durations[durations > 0]
    median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
    max_dur = median * 2 if median > 0 else 1.4
    k = 0
    for seg in segments:
        need = len(text_tokens(tokenizer, seg))
        got = 0
        placed: list[dict[str, Any]] = []
        while k < len(words) and got < need:
            w = words[k]
            got += len(w["tokens"])
            k += 1
            if not w["word"].strip():
                continue
            start, end = w["start"], max(w["start"], w["end"])
            piece = window.piece_at((start + end) / 2)
            placed.append(
                {
                    "word": w["word"],
                    "start": round(window.to_recording(start, piece), 3),
                    "end": round(window.to_recording(end, piece), 3),
                    "probability": w["probability"],
                }
            )
        _merge_punctuation(placed)
        if placed:
            first, last = placed[0], placed[-1]
            if first["end"] - first["start"] > max_dur:
                first["start"] = round(first["end"] - max_dur, 3)
            if len(placed) > 1 and last["end"] - last["start"] > max_dur:
                last["end"] = round(last["start"] + max_dur, 3)
        seg.words = placed


def _merge_punctuation(words: list[dict[str, Any]]) -> None:
    """A word that is only punctuation joins its neighbour (Whisper's prepend/append rule)."""
    prepend, append = "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、"
    i = 0
    while i < len(words):
        w = words[i]["word"]
        stripped = w.strip()
        if stripped and all(c in append for c in stripped) and i > 0 and not w.startswith(" "):
            words[i - 1]["word"] += w  # its time stays the word's (the aligner often
            del words[i]  # places punctuation late, in the pause after it)
            continue
        if stripped and all(c in prepend for c in stripped) and i + 1 < len(words):
            words[i + 1]["word"] = w + words[i + 1]["word"].lstrip()
            words[i + 1]["start"] = min(words[i + 1]["start"], words[i]["start"])
            del words[i]
            continue
        i += 1
