#pragma once
// Unicode Normalization Form C (canonical decomposition, canonical ordering, canonical
// composition; UAX #15), the `NFC` normalizer of Hugging Face tokenizer.json files (Qwen 2 and
// others ship one). Tables: data/nfc_tables.h.
#include <string>
#include <string_view>

namespace moda::data {

// Writes NFC(text) to `out` and returns true, or returns false (leaving `out` alone) when `text`
// is already NFC by the quick check (no code point near which NFC could change anything: the
// common case, which costs one scan and no copy). Bytes that are not valid UTF-8 are kept as
// they are and block composition across them.
bool nfc_normalize(std::string_view text, std::string& out);

// NFC(text) as a new string.
std::string nfc(std::string_view text);

}  // namespace moda::data
