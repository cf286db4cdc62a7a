"""The intent model's tokenizer: a WordPiece vocabulary learned deterministically, wrapped as a ``tokenizers``
tokenizer (BERT normalisation and pre-tokenisation, [CLS] ... [SEP])."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def learn_wordpiece_vocab(words: Counter[str], vocab_size: int) -> list[str]:
    """A WordPiece vocabulary from word counts, deterministically.

    ``tokenizers``' own WordPiece trainer breaks frequency ties by hash-map order, so two runs on the same data
    give different vocabularies (and different models). Here every choice is ordered by (count, text): all
    characters (so nothing is ever [UNK]), then whole words, word-initial pieces and ``##`` continuations ranked
    by how many running-text occurrences they cover.
    """
    chars = sorted({c for w in words for c in w})
    vocab = [*SPECIALS, *chars, *(f"##{c}" for c in chars)]
    pieces: Counter[str] = Counter()
    for word, n in words.items():
        if n >= 2:
            pieces[word] += n * len(word)
        for size in range(2, min(len(word), 7)):
            pieces[word[:size]] += n * size
            for start in range(1, len(word) - size + 1):
                pieces[f"##{word[start : start + size]}"] += n * size // 2
    seen = set(vocab)
    for piece, _ in sorted(pieces.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        if piece not in seen:
            vocab.append(piece)
            seen.add(piece)
    return vocab


def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    # Lower-casing and accent stripping make casing invariance a property of the model, not a hope.
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter(w for text in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = learn_wordpiece_vocab(words, vocab_size)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


# A tokenizer is not safe to configure while another thread encodes with it ("Already borrowed",
# huggingface/tokenizers#537): a server answers requests from a threadpool, so encoding is serialised (~0.1 ms).
_TOKENIZER_LOCK = threading.Lock()


def encode(tokenizer, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask (int64, padded to the longest text, cut at ``max_length``) as numpy arrays:
    the one encoding both runtimes use, torch for training and onnxruntime for serving, so neither can drift."""
    with _TOKENIZER_LOCK:
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")
        batch = tokenizer.encode_batch(texts)
    ids = np.asarray([e.ids for e in batch], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in batch], dtype=np.int64)
    return ids, mask
