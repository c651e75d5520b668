#pragma once
// GPT-2's byte-to-unicode map ("bytes_to_unicode"): every byte gets a printable character so that
// BPE tokens are readable strings in tokenizer.json. Printable Latin-1 bytes ('!'..'~', '¡'..'¬',
// '®'..'ÿ') map to themselves; the other 68 bytes map, in order, to U+0100, U+0101, ... (so the
// space 0x20 is 'Ġ' U+0120 and the newline 0x0A is 'Ċ' U+010A).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moda::data {

// UTF-8 of the character that byte `b` maps to.
const std::string& byte_to_unicode(uint8_t b);

// The byte that character `c` stands for, or -1 when `c` is not one of the 256 characters.
int unicode_to_byte(char32_t c);

// Spelling of a raw byte string in tokenizer.json ("hello world" -> "helloĠworld").
std::string byte_level_encode(std::string_view bytes);

// Raw bytes of a tokenizer.json spelling, or nullopt if some character is not in the map (such
// a token decodes to its own UTF-8, as Hugging Face's ByteLevel decoder does).
std::optional<std::string> byte_level_decode(std::string_view spelling);

}  // namespace moda::data
