#!/usr/bin/env python3
"""Makes the Hugging Face compatibility fixture for moda's byte-level BPE tokenizer.

Runs where the Hugging Face `tokenizers` library is installed (the GPU host has 0.23):

    python3 tools/make_tokenizer_fixture.py tests/fixtures/tokenizer OUT_DIR

Reads the real text committed in tests/fixtures/tokenizer/ (license excerpts copied from Debian's
/usr/share/common-licenses and passages.json with tricky cases), trains two small GPT-2-style
byte-level BPE tokenizers with `tokenizers` (add_prefix_space false and true), and writes to
OUT_DIR:
  hf_tokenizer.json, hf_tokenizer_prefix.json   the tokenizers as the library saves them
  hf_cases.json                                 for every passage: text, ids, tokens, decoded text
tests/cpu/test_tokenizer_hf.cpp loads these and requires moda's encoder to give the same ids.
"""
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

TRAIN_FILES = ["gpl3_excerpt.txt", "apache2_excerpt.txt"]
# Passages never seen in training (MPL-2.0) and seen ones (GPL-3) are both encoded.
PASSAGE_FILES = ["mpl2_excerpt.txt", "gpl3_excerpt.txt"]
VOCAB_SIZE = 1000
EOT = "<|endoftext|>"


def train(src, add_prefix_space):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train([os.path.join(src, f) for f in TRAIN_FILES], trainer)
    return tok


def cases(tok, passages):
    out = []
    for text in passages:
        enc = tok.encode(text, add_special_tokens=False)
        out.append({
            "text": text,
            "ids": enc.ids,
            "tokens": enc.tokens,
            "decoded": tok.decode(enc.ids, skip_special_tokens=False),
        })
    return out


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(src, "passages.json"), encoding="utf-8") as f:
        passages = json.load(f)
    for name in PASSAGE_FILES:
        with open(os.path.join(src, name), encoding="utf-8") as f:
            passages.append(f.read())

    result = {"tokenizers_version": tokenizers.__version__, "tokenizers": {}}
    for fname, prefix in [("hf_tokenizer.json", False), ("hf_tokenizer_prefix.json", True)]:
        tok = train(src, prefix)
        tok.save(os.path.join(out, fname))
        result["tokenizers"][fname] = {
            "add_prefix_space": prefix,
            "vocab_size": tok.get_vocab_size(),
            "eot_id": tok.token_to_id(EOT),
            "cases": cases(tok, passages),
        }
    with open(os.path.join(out, "hf_cases.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
    print("tokenizers", tokenizers.__version__, "wrote", sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
