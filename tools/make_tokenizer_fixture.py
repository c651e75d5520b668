#!/usr/bin/env python3
"""Makes the Hugging Face compatibility fixture for moda's byte-level BPE tokenizer.

Runs where the Hugging Face `tokenizers` library is installed (the GPU host has 0.23):

    python3 tools/make_tokenizer_fixture.py tests/fixtures/tokenizer OUT_DIR

Reads the real text committed in tests/fixtures/tokenizer/ (license excerpts copied from Debian's
/usr/share/common-licenses and passages.json with tricky cases), trains small byte-level BPE
tokenizers with `tokenizers` and writes to OUT_DIR:
  hf_tokenizer.json, hf_tokenizer_prefix.json   GPT-2 layout (ByteLevel pre-tokenizer with its
                                                regex), add_prefix_space false and true
  hf_cases.json                                 for every passage: text, ids, tokens, decoded text
  hf_tokenizer_llama3.json                      Llama 3 / OLMo 2 layout: Sequence[Split(cl100k
                                                regex, Isolated), ByteLevel(use_regex=False)], no
                                                normalizer, TemplateProcessing post-processor,
                                                <|begin_of_text|> and reserved special tokens
  hf_tokenizer_qwen2.json                       Qwen 2 layout: Qwen 2's regex, NFC normalizer, and
                                                one added token with normalized=True
  hf_tokenizer_o200k.json                       GPT-4o's o200k regex
  hf_layout_cases.json                          the cases of these three, as in hf_cases.json
  hf_split_cases.json                           for each of the four regexes (GPT-2, cl100k, Qwen 2,
                                                o200k) the pieces the Split pre-tokenizer alone makes
                                                of every passage, and each passage's NFC form
tests/cpu/test_tokenizer_hf.cpp loads these and requires moda's encoder, regex engine and NFC to
give the same ids, pieces and text.
"""
import json
import os
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

TRAIN_FILES = ["gpl3_excerpt.txt", "apache2_excerpt.txt"]
# Passages never seen in training (MPL-2.0) and seen ones (GPL-3) are both encoded.
PASSAGE_FILES = ["mpl2_excerpt.txt", "gpl3_excerpt.txt"]
VOCAB_SIZE = 1000
EOT = "<|endoftext|>"

# The Split regexes as tokenizer.json files ship them; the same strings as data/split_patterns.h.
PATTERNS = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "cl100k": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "qwen2": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "o200k": r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}
LLAMA3_SPECIALS = [EOT, "<|begin_of_text|>", "<|end_of_text|>"] + [
    f"<|reserved_special_token_{i}|>" for i in range(8)]
QWEN2_SPECIALS = [EOT, "<|im_start|>", "<|im_end|>"]


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


def train_layout(src, pattern, nfc, specials):
    """A tokenizer in the Split + ByteLevel layout of Llama 3 / Qwen 2 (as their files have it)."""
    tok = Tokenizer(models.BPE())
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=specials,
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

    layouts = {"tokenizers_version": tokenizers.__version__, "tokenizers": {}}
    # Llama 3 / OLMo 2: cl100k regex, no normalizer, <|begin_of_text|> added by the post-processor
    # (which moda ignores: encode() is encode(text, add_special_tokens=False)).
    llama3 = train_layout(src, PATTERNS["cl100k"], False, LLAMA3_SPECIALS)
    bos = llama3.token_to_id("<|begin_of_text|>")
    llama3.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    # Qwen 2: its own regex (single digits) and NFC; a normalized added token is matched in the
    # normalized text, so a decomposed "nai\u0308ve" in a passage becomes this token.
    qwen2 = train_layout(src, PATTERNS["qwen2"], True, QWEN2_SPECIALS)
    qwen2.post_processor = processors.ByteLevel(trim_offsets=False)
    qwen2.add_tokens([AddedToken("naïve", single_word=False, lstrip=False, rstrip=False, normalized=True, special=False)])
    o200k = train_layout(src, PATTERNS["o200k"], False, [EOT])
    o200k.post_processor = processors.ByteLevel(trim_offsets=False)
    for fname, tok, nfc in [("hf_tokenizer_llama3.json", llama3, False), ("hf_tokenizer_qwen2.json", qwen2, True),
                            ("hf_tokenizer_o200k.json", o200k, False)]:
        tok.save(os.path.join(out, fname))
        layouts["tokenizers"][fname] = {
            "add_prefix_space": False,
            "nfc": nfc,
            "vocab_size": tok.get_vocab_size(),
            "eot_id": tok.token_to_id(EOT),
            "cases": cases(tok, passages),
        }
    with open(os.path.join(out, "hf_layout_cases.json"), "w", encoding="utf-8") as f:
        json.dump(layouts, f, ensure_ascii=False, indent=1)

    # The regexes alone (no added tokens, no normalizer), and NFC alone.
    nfc = normalizers.NFC()
    splits = {"tokenizers_version": tokenizers.__version__, "patterns": {}, "nfc": []}
    for name, pattern in PATTERNS.items():
        split = pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)
        splits["patterns"][name] = {
            "pattern": pattern,
            "cases": [{"text": t, "pieces": [p for p, _ in split.pre_tokenize_str(t)]} for t in passages],
        }
    splits["nfc"] = [{"text": t, "nfc": nfc.normalize_str(t)} for t in passages]
    with open(os.path.join(out, "hf_split_cases.json"), "w", encoding="utf-8") as f:
        json.dump(splits, f, ensure_ascii=False, indent=1)
    print("tokenizers", tokenizers.__version__, "wrote", sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
