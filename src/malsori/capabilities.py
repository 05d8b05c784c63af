"""What a Whisper model can do, written once.

English-only models (``tiny.en``, ``base.en``, ...) transcribe English and nothing else, and
never translate; a model is multilingual when its vocabulary has at least 51,865 tokens
(openai-whisper's own rule). Asked by the fine-tuning data preparation (rows it refuses);
``engine.check_options`` states the same rule for transcription (the API, the CLI, batch,
eval and the server go through it).
"""

from __future__ import annotations

#: The smallest vocabulary of a multilingual Whisper model (English-only ones have 51,864).
MULTILINGUAL_VOCAB_SIZE = 51865
#: large-v3's vocabulary: the first with a Cantonese token (``<|yue|>``).
CANTONESE_VOCAB_SIZE = 51866


def lacks_language(name: str, vocab_size: int, language: str | None) -> str | None:
    """Why a model with ``vocab_size`` tokens has no token for ``language``, or None (from
    the size alone, before loading: only Cantonese came later; a loaded model is asked for
    the token itself, see ``engine.check_options``)."""
    if language == "yue" and vocab_size < CANTONESE_VOCAB_SIZE:
        return f"model {name} has no language 'yue' in its vocabulary (Cantonese needs large-v3)"
    return None


def is_multilingual_vocab(vocab_size: int) -> bool:
    """openai-whisper's rule: the multilingual vocabulary is one token larger."""
    return vocab_size >= MULTILINGUAL_VOCAB_SIZE


def unsupported(
    name: str, multilingual: bool, language: str | None, task: str = "transcribe"
) -> str | None:
    """Why model ``name`` cannot do ``task`` in ``language`` (one sentence), or None."""
    if multilingual:
        return None
    if language not in (None, "en"):
        return (
            f"model {name} is English-only; it cannot transcribe language {language!r} "
            "(use a multilingual model such as base)"
        )
    if task == "translate":
        return f"model {name} is English-only; it cannot translate"
    return None
