#pragma once
// The Split pre-tokenizer regexes that real tokenizer.json files ship, as written there (JSON
// unescaped). data/regex.h supports these; the tests and fixtures use them by name.
namespace moda::data::patterns {

// GPT-2's ByteLevel regex (tokenizers' byte_level.rs; OpenAI's gpt-2 encoder.py). Implemented by
// hand in data/pretokenize.cpp as the fast path; the regex engine gives the same pieces.
inline constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// cl100k (GPT-4) as Llama 3 and OLMo 2 ship it: meta-llama/Meta-Llama-3-8B tokenizer.json,
// pre_tokenizer.pretokenizers[0].pattern.Regex (quoted in github.com/harrison-f-stropkay/prefix
// docs/notes.md; identical in llama.cpp's unicode.cpp list of known patterns).
inline constexpr const char* kCl100k =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Qwen 2 / 2.5 (single digits): Qwen/Qwen2.5-1.5B tokenizer.json (quoted in pytorch/executorch's
// regex tests, which cite https://huggingface.co/Qwen/Qwen2.5-1.5B/raw/main/tokenizer.json).
inline constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// o200k (GPT-4o): tiktoken's o200k_base pattern as tokenizer.json files carry it (case-split words
// with optional contraction suffixes, "/" after punctuation runs); quoted, e.g., in public Go and
// Rust tokenizer.json loaders' tests that were checked against tokenizers 0.22.
inline constexpr const char* kO200k =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace moda::data::patterns
