// Parser (pattern -> syntax tree), compiler (tree -> backtracking program) and matcher.
#include "data/regex.h"

#include <algorithm>
#include <array>
#include <optional>

#include "core/error.h"
#include "data/pretokenize.h"
#include "data/unicode_tables.h"

namespace moda::data {

namespace {

using unicode::GeneralCategory;

// Each code point of the subject gets a property mask: one bit for its general category, plus
// kSpaceBit or kNonSpaceBit. A class item such as \p{L}, \P{N} or \S is then a mask, and a
// class holds a character when any of its masks share a bit with the character's mask.
constexpr uint32_t kSpaceBit = 1u << 30, kNonSpaceBit = 1u << 31;
constexpr uint32_t kAllCategories = (1u << unicode::kNumGeneralCategories) - 1;
constexpr char32_t kInvalid = 0xFFFFFFFF;  // utf8_decode's value for a byte that is not UTF-8

constexpr uint32_t bit(GeneralCategory c) { return 1u << static_cast<int>(c); }

uint32_t props_of(char32_t c) {
  if (c == kInvalid) return bit(GeneralCategory::Cn) | kNonSpaceBit;  // like an unassigned character
  return bit(unicode::general_category(c)) | (unicode::is_whitespace(c) ? kSpaceBit : kNonSpaceBit);
}

const std::array<uint32_t, 128>& ascii_props() {
  static const std::array<uint32_t, 128> table = [] {
    std::array<uint32_t, 128> t{};
    for (char32_t c = 0; c < 128; ++c) t[c] = props_of(c);
    return t;
  }();
  return table;
}

// The general categories named by \p{NAME}: one category, or a group by its first letter.
std::optional<uint32_t> category_mask(const std::string& name) {
  using G = GeneralCategory;
  static const char* const kNames[] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd",
                                       "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm",
                                       "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"};
  static_assert(std::size(kNames) == unicode::kNumGeneralCategories);
  if (name == "LC" || name == "L&") return bit(G::Lu) | bit(G::Ll) | bit(G::Lt);
  uint32_t mask = 0;
  for (int i = 0; i < unicode::kNumGeneralCategories; ++i)
    if (name == kNames[i] || (name.size() == 1 && name[0] == kNames[i][0])) mask |= 1u << i;
  if (!mask) return std::nullopt;
  return mask;
}

uint32_t word_mask() {  // \w in Oniguruma's Unicode mode: letters, marks, decimal digits, connectors
  using G = GeneralCategory;
  return *category_mask("L") | *category_mask("M") | bit(G::Nd) | bit(G::Pc);
}

}  // namespace

// The program's parts; named (not anonymous) because Regex::Program holds them.
namespace regex_impl {

struct CodeClass {
  bool negated = false;
  uint32_t mask = 0;                                  // property bits (see props_of)
  std::vector<std::pair<char32_t, char32_t>> ranges;  // inclusive code point ranges
  bool contains(char32_t c, uint32_t props) const {
    bool in = (props & mask) != 0;
    for (size_t i = 0; !in && i < ranges.size(); ++i) in = c >= ranges[i].first && c <= ranges[i].second;
    return in != negated;
  }
};

enum class Op : uint8_t {
  Set,        // one character of classes[arg]
  SetRepeat,  // min..max characters of classes[arg], greedy, giving back one at a time
  Split,      // try x; on failure come back and try y
  Jmp,        // go to x
  Look,       // the sub-program at x matches here (arg 1: must not match); consumes nothing
  Match,
};

struct Inst {
  Op op = Op::Match;
  int arg = 0, x = 0, y = 0;
  int min = 0, max = 0;  // SetRepeat; max -1 = unbounded
};

}  // namespace regex_impl

struct Regex::Program {
  std::string pattern;  // for error messages
  std::vector<regex_impl::CodeClass> classes;
  std::vector<regex_impl::Inst> code;  // top-level alternatives first, then lookahead bodies
  // One entry per top-level alternative, tried in order (leftmost-first). `first` lists classes
  // of which a match's first character must be in one, so most alternatives are skipped after
  // one class test; `any`: no such filter (the alternative can match empty or starts with a
  // lookahead).
  struct Entry {
    int pc = 0;
    std::vector<int> first;
    bool any = false;
  };
  std::vector<Entry> entries;
};

namespace {

using regex_impl::CodeClass;
using regex_impl::Inst;
using regex_impl::Op;

constexpr int kMaxRepeat = 1000;        // largest n or m in {n,m}
constexpr size_t kMaxProgram = 100000;  // instructions after expanding counted repeats

struct Node {
  enum Kind { Empty, Set, Concat, Alt, Repeat, Look } kind = Empty;
  int cls = -1;            // Set
  std::vector<Node> kids;  // Concat, Alt; Repeat and Look: one
  int min = 1, max = 1;    // Repeat (max -1: unbounded)
  bool negative = false;   // Look
};

Node node_of(Node::Kind kind) {
  Node n;
  n.kind = kind;
  return n;
}

Inst inst_of(Op op, int arg = 0) {
  Inst in;
  in.op = op;
  in.arg = arg;
  return in;
}

class Parser {
 public:
  Parser(std::string_view pattern, Regex::Program& prog) : pattern_(pattern), prog_(prog) {
    for (size_t i = 0, len; i < pattern.size(); i += len) {
      char32_t c = utf8_decode(pattern, i, len);
      if (c == kInvalid) fail_at(cps_.size(), "the pattern is not valid UTF-8");
      cps_.push_back(c);
    }
  }

  Node parse() {
    Node n = parse_alt(false);
    if (pos_ < cps_.size()) fail("unmatched ')'");
    return n;
  }

 private:
  [[noreturn]] void fail_at(size_t pos, const std::string& what) const {
    MODA_FAIL("regex '", pattern_, "': at character ", pos, ": ", what);
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }
  bool at_end() const { return pos_ >= cps_.size(); }
  char32_t peek(size_t ahead = 0) const { return pos_ + ahead < cps_.size() ? cps_[pos_ + ahead] : 0; }
  bool eat(char32_t c) {
    if (peek() != c || at_end()) return false;
    ++pos_;
    return true;
  }

  Node parse_alt(bool ci) {
    Node alt = node_of(Node::Alt);
    alt.kids.push_back(parse_concat(ci));
    while (eat('|')) alt.kids.push_back(parse_concat(ci));
    return alt.kids.size() == 1 ? std::move(alt.kids[0]) : alt;
  }

  // `ci` belongs to the enclosing group: an inline (?i) reaches its later alternatives too.
  Node parse_concat(bool& ci) {
    Node seq = node_of(Node::Concat);
    while (!at_end() && peek() != '|' && peek() != ')') {
      const size_t start = pos_;
      if (peek() == '(' && peek(1) == '?' && peek(2) == 'i' && peek(3) == ')') {
        pos_ += 4, ci = true;
        continue;
      }
      Node atom = parse_atom(ci);
      parse_quantifier(atom, start);
      seq.kids.push_back(std::move(atom));
    }
    return seq;
  }

  Node parse_atom(bool ci) {
    const char32_t c = peek();
    if (c == '(') return parse_group(ci);
    if (c == '[') return set_node(parse_class(ci));
    if (c == '\\') {
      ++pos_;
      CodeClass cls;
      parse_escape(cls, ci, false);
      return set_node(std::move(cls));
    }
    if (c == '.') fail("'.' is not supported");
    if (c == '^' || c == '$') fail("anchors (^ $) are not supported");
    if (c == '*' || c == '+' || c == '?' || c == '{') fail("nothing to repeat");
    ++pos_;
    CodeClass cls;
    add_literal(cls, c, ci);
    return set_node(std::move(cls));
  }

  Node parse_group(bool ci) {
    const size_t open = pos_++;
    Node inner;
    if (eat('?')) {
      if (eat(':')) {
        inner = parse_alt(ci);
      } else if (peek() == 'i' && peek(1) == ':') {
        pos_ += 2;
        inner = parse_alt(true);
      } else if (peek() == '-' && peek(1) == 'i' && peek(2) == ':') {
        pos_ += 3;
        inner = parse_alt(false);
      } else if (peek() == '=' || peek() == '!') {
        Node look = node_of(Node::Look);
        look.negative = cps_[pos_++] == '!';
        look.kids.push_back(parse_alt(ci));
        inner = std::move(look);
      } else {
        fail("group kind '(?" + std::string(1, static_cast<char>(peek() < 128 ? peek() : '?')) +
             "' is not supported (only (?:, (?i:, (?-i:, (?i), (?= and (?!)");
      }
    } else {
      inner = parse_alt(ci);  // capturing group: the captures are not used
    }
    if (!eat(')')) fail_at(open, "'(' is not closed");
    return inner;
  }

  void parse_quantifier(Node& atom, size_t start) {
    int min, max;
    const size_t qpos = pos_;
    if (eat('?'))
      min = 0, max = 1;
    else if (eat('*'))
      min = 0, max = -1;
    else if (eat('+'))
      min = 1, max = -1;
    else if (peek() == '{') {
      ++pos_;
      min = at_end() || peek() == ',' ? 0 : parse_int();
      max = min;
      if (eat(',')) max = peek() == '}' ? -1 : parse_int();
      if (!eat('}')) fail("expected '}' to end the repeat count");
      if (max != -1 && max < min) fail_at(qpos, "repeat {n,m} with m < n");
    } else {
      return;
    }
    if (peek() == '?' || peek() == '+') fail("lazy and possessive quantifiers are not supported");
    if (atom.kind == Node::Look) fail_at(start, "a lookahead cannot be repeated");
    if (peek() == '*' || peek() == '{') fail("nested quantifier");
    Node rep = node_of(Node::Repeat);
    rep.min = min, rep.max = max;
    rep.kids.push_back(std::move(atom));
    if (max == -1 && min_length(rep.kids[0]) == 0)
      fail_at(start, "an unbounded repeat of something that can match the empty string");
    atom = std::move(rep);
  }

  int parse_int() {
    if (at_end() || peek() < '0' || peek() > '9') fail("expected a number in the repeat count");
    int v = 0;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      v = v * 10 + int(cps_[pos_++] - '0');
      if (v > kMaxRepeat) fail("repeat count over " + std::to_string(kMaxRepeat));
    }
    return v;
  }

  static size_t min_length(const Node& n) {
    switch (n.kind) {
      case Node::Set: return 1;
      case Node::Concat: {
        size_t s = 0;
        for (auto& k : n.kids) s += min_length(k);
        return s;
      }
      case Node::Alt: {
        size_t s = SIZE_MAX;
        for (auto& k : n.kids) s = std::min(s, min_length(k));
        return s;
      }
      case Node::Repeat: return n.min * min_length(n.kids[0]);
      default: return 0;
    }
  }

  CodeClass parse_class(bool ci) {
    const size_t open = pos_++;
    CodeClass cls;
    cls.negated = eat('^');
    bool first = true;
    while (true) {
      if (at_end()) fail_at(open, "'[' is not closed");
      const char32_t c = peek();
      if (c == ']' && !first) break;
      first = false;
      if (c == '[') fail("nested classes and [:posix:] classes are not supported");
      if (c == '&' && peek(1) == '&') fail("class intersection && is not supported");
      char32_t lo;
      ++pos_;
      if (c == '\\') {
        if (!parse_escape(cls, ci, true, &lo)) continue;  // a property such as \p{L}: no range
      } else {
        lo = c;
      }
      if (peek() == '-' && peek(1) != ']' && pos_ + 1 < cps_.size()) {
        ++pos_;
        char32_t hi = peek();
        ++pos_;
        if (hi == '\\' && !parse_escape(cls, ci, true, &hi)) fail("a range cannot end in a class escape");
        if (hi == '[') fail("nested classes are not supported");
        if (hi < lo) fail("range out of order");
        add_range(cls, lo, hi, ci);
      } else {
        add_literal(cls, lo, ci);
      }
    }
    ++pos_;  // ']'
    return cls;
  }

  // After a backslash. Adds a property escape (\p{..}, \s, \d, ...) to `cls`, or returns the
  // escaped literal: through `literal` inside a class (returning true), else added to `cls`.
  bool parse_escape(CodeClass& cls, bool ci, bool in_class, char32_t* literal = nullptr) {
    if (at_end()) fail("pattern ends in '\\'");
    const size_t esc = pos_ - 1;
    const char32_t c = cps_[pos_++];
    auto property = [&](uint32_t mask) {
      cls.mask |= mask;
      return false;
    };
    switch (c) {
      case 'p':
      case 'P': {
        if (!eat('{')) fail("expected '{' after \\" + std::string(1, char(c)));
        bool negate = c == 'P';
        if (eat('^')) negate = !negate;
        std::string name;
        while (!at_end() && peek() != '}' && peek() < 128) name += static_cast<char>(cps_[pos_++]);
        if (!eat('}')) fail("expected '}' to end \\p{...}");
        auto mask = category_mask(name);
        if (!mask)
          fail_at(esc, "\\p{" + name +
                           "} is not supported (general categories only: L, Lu, Ll, Lt, Lm, Lo, M, N, P, S, Z, C and "
                           "their two-letter forms)");
        return property(negate ? (kAllCategories & ~*mask) : *mask);
      }
      case 's': return property(kSpaceBit);
      case 'S': return property(kNonSpaceBit);
      case 'd': return property(bit(GeneralCategory::Nd));
      case 'D': return property(kAllCategories & ~bit(GeneralCategory::Nd));
      case 'w': return property(word_mask());
      case 'W': return property(kAllCategories & ~word_mask());
      default: break;
    }
    char32_t lit;
    switch (c) {
      case 'n': lit = '\n'; break;
      case 'r': lit = '\r'; break;
      case 't': lit = '\t'; break;
      case 'f': lit = '\f'; break;
      case 'v': lit = '\v'; break;
      case 'e': lit = 0x1B; break;
      default:
        if (c < 128 && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && !(c >= '0' && c <= '9')) {
          lit = c;  // escaped punctuation stands for itself
          break;
        }
        fail_at(esc, "escape '\\" + std::string(1, static_cast<char>(c < 128 ? c : '?')) + "' is not supported");
    }
    if (in_class && literal) {
      *literal = lit;
      return true;
    }
    add_literal(cls, lit, ci);
    return false;
  }

  // Simple case folding for case-insensitive groups. The shipped patterns only fold ASCII
  // letters (the contractions 's 't 're 've 'm 'll 'd); Unicode's simple folding also maps
  // U+017F LATIN SMALL LETTER LONG S to s and U+212A KELVIN SIGN to k, which Oniguruma honours.
  void add_literal(CodeClass& cls, char32_t c, bool ci) { add_range(cls, c, c, ci); }

  void add_range(CodeClass& cls, char32_t lo, char32_t hi, bool ci) {
    cls.ranges.emplace_back(lo, hi);
    if (!ci) return;
    for (char32_t c = lo; c <= hi; ++c) {
      if (c >= 128 && unicode::is_letter(c)) fail("case-insensitive matching of non-ASCII letters is not supported");
      if (c >= 128) continue;
      const char32_t lower = c | 0x20;
      if (lower < 'a' || lower > 'z') continue;
      cls.ranges.emplace_back(lower ^ 0x20, lower ^ 0x20);  // the upper-case form
      cls.ranges.emplace_back(lower, lower);
      if (lower == 's') cls.ranges.emplace_back(0x17F, 0x17F);
      if (lower == 'k') cls.ranges.emplace_back(0x212A, 0x212A);
    }
  }

  Node set_node(CodeClass cls) {
    prog_.classes.push_back(std::move(cls));
    Node n = node_of(Node::Set);
    n.cls = static_cast<int>(prog_.classes.size() - 1);
    return n;
  }

  std::string_view pattern_;
  Regex::Program& prog_;
  std::vector<char32_t> cps_;
  size_t pos_ = 0;
};

class Compiler {
 public:
  Compiler(std::string_view pattern, Regex::Program& prog) : pattern_(pattern), prog_(prog) {}

  void compile(const Node& root) {
    const std::vector<Node> single = {root};
    for (const Node& alt : root.kind == Node::Alt ? root.kids : single) {
      Regex::Program::Entry e;
      e.pc = here();
      emit(alt);
      add(inst_of(Op::Match));
      e.any = first_chars(alt, e.first, e.any) || e.any;
      prog_.entries.push_back(std::move(e));
    }
    // Lookahead bodies go after the main program, each ending in Match (they may add more).
    for (size_t i = 0; i < pending_.size(); ++i) {
      auto [inst, node] = pending_[i];
      prog_.code[inst].x = here();
      emit(*node);
      add(inst_of(Op::Match));
    }
  }

 private:
  // Adds to `out` classes one of which holds the first character of any match of `n`; returns
  // true when `n` can match the empty string (the first character may then come from what
  // follows). A lookahead sets `any`: it constrains what follows without consuming it.
  static bool first_chars(const Node& n, std::vector<int>& out, bool& any) {
    switch (n.kind) {
      case Node::Set: out.push_back(n.cls); return false;
      case Node::Concat:
        for (const Node& k : n.kids)
          if (!first_chars(k, out, any)) return false;
        return true;
      case Node::Alt: {
        bool nullable = false;
        for (const Node& k : n.kids) nullable = first_chars(k, out, any) || nullable;
        return nullable;
      }
      case Node::Repeat: return first_chars(n.kids[0], out, any) || n.min == 0;
      case Node::Look: any = true; return true;
      case Node::Empty: return true;
    }
    return true;
  }

  int here() const { return static_cast<int>(prog_.code.size()); }
  int add(Inst in) {
    if (prog_.code.size() >= kMaxProgram)
      MODA_FAIL("regex '", pattern_, "': too large after expanding repeat counts (over ", kMaxProgram, " steps)");
    prog_.code.push_back(in);
    return here() - 1;
  }

  void emit(const Node& n) {
    switch (n.kind) {
      case Node::Empty: break;
      case Node::Set: add(inst_of(Op::Set, n.cls)); break;
      case Node::Concat:
        for (auto& k : n.kids) emit(k);
        break;
      case Node::Alt: {
        std::vector<int> to_end;
        for (size_t i = 0; i < n.kids.size(); ++i) {
          int split = -1;
          if (i + 1 < n.kids.size()) split = add(inst_of(Op::Split));
          if (split >= 0) prog_.code[split].x = here();
          emit(n.kids[i]);
          if (split >= 0) {
            to_end.push_back(add(inst_of(Op::Jmp)));
            prog_.code[split].y = here();
          }
        }
        for (int j : to_end) prog_.code[j].x = here();
        break;
      }
      case Node::Repeat: emit_repeat(n); break;
      case Node::Look: {
        Inst in = inst_of(Op::Look, n.negative ? 1 : 0);
        pending_.emplace_back(add(in), &n.kids[0]);
        break;
      }
    }
  }

  void emit_repeat(const Node& n) {
    const Node& body = n.kids[0];
    if (body.kind == Node::Set) {  // the common case, one instruction that scans a run
      Inst in = inst_of(Op::SetRepeat, body.cls);
      in.min = n.min, in.max = n.max;
      add(in);
      return;
    }
    for (int i = 0; i < n.min; ++i) emit(body);
    if (n.max == -1) {  // L: Split(body, end); body; Jmp L
      const int loop = add(inst_of(Op::Split));
      prog_.code[loop].x = here();
      emit(body);
      Inst back = inst_of(Op::Jmp);
      back.x = loop;
      add(back);
      prog_.code[loop].y = here();
      return;
    }
    // (body (body ...)?)? : each optional copy is tried first, and skipping it ends the repeat.
    std::vector<int> splits;
    for (int i = n.min; i < n.max; ++i) {
      splits.push_back(add(inst_of(Op::Split)));
      prog_.code[splits.back()].x = here();
      emit(body);
    }
    for (int s : splits) prog_.code[s].y = here();
  }

  std::string_view pattern_;
  Regex::Program& prog_;
  std::vector<std::pair<int, const Node*>> pending_;
};

// A window of the subject: code points with their property masks, and byte offsets (one more
// than chars). Long texts are matched through windows of kWindow code points so that memory
// stays small; `truncated` says text follows the window, and the matcher sets `hit_end` when it
// looked past the window's end (the attempt is then redone on a window starting there).
struct Subject {
  struct Char {
    char32_t cp;
    uint32_t props;
  };
  std::vector<Char> chars;
  std::vector<size_t> offsets;  // into the whole text
  size_t n = 0;
  bool truncated = false;
  mutable bool hit_end = false;

  // Decodes at most `max_chars` code points of `text` from byte `from`.
  void assign(std::string_view text, size_t from, size_t max_chars) {
    const size_t cap = std::min(text.size() - from, max_chars);  // a code point is at least a byte
    if (chars.size() < cap) chars.resize(cap);
    if (offsets.size() < cap + 1) offsets.resize(cap + 1);
    const auto& ascii = ascii_props();
    n = 0;
    size_t i = from;
    for (size_t len; i < text.size() && n < cap; i += len, ++n) {
      offsets[n] = i;
      const auto b = static_cast<unsigned char>(text[i]);
      if (b < 0x80) {
        len = 1;
        chars[n] = {b, ascii[b]};
        continue;
      }
      const char32_t c = utf8_decode(text, i, len);
      chars[n] = {c, props_of(c)};
    }
    offsets[n] = i;
    truncated = i < text.size();
  }
  // True when position `pos` (== n) is the window's end but not the text's: noted in hit_end.
  bool at_window_end(size_t pos) const {
    if (pos >= n && truncated) hit_end = true;
    return pos >= n;
  }
};

constexpr size_t kWindow = 1 << 16;
constexpr uint64_t kMaxSteps = 10'000'000;

struct Backtrack {
  int pc;
  size_t pos;
  size_t floor;  // SetRepeat give-back: may retreat while pos > floor; SIZE_MAX for a Split
};

// Runs the program from `pc` at character `pos`; returns the end of the first match found in
// priority order (leftmost-first), or SIZE_MAX.
size_t run(const Regex::Program& prog, const Subject& s, int pc, size_t pos, std::vector<Backtrack>& stack,
           uint64_t& steps) {
  const size_t base = stack.size(), n = s.n;
  while (true) {
    // Oniguruma gives up after 10M backtracking steps too; the shipped patterns need a few per
    // character, a pathological pattern (nested repeats) could otherwise run for hours.
    if (++steps > kMaxSteps)
      MODA_FAIL("regex '", prog.pattern, "': over ", kMaxSteps, " backtracking steps for one match");
    const Inst& in = prog.code[pc];
    bool ok = true;
    switch (in.op) {
      case Op::Set:
        ok = !s.at_window_end(pos) && prog.classes[in.arg].contains(s.chars[pos].cp, s.chars[pos].props);
        if (ok) ++pos, ++pc;
        break;
      case Op::SetRepeat: {
        const CodeClass& cls = prog.classes[in.arg];
        const size_t limit = in.max < 0 ? n : std::min(n, pos + size_t(in.max));
        size_t end = pos;
        while (end < limit && cls.contains(s.chars[end].cp, s.chars[end].props)) ++end;
        if (end == n && (in.max < 0 || pos + size_t(in.max) > n)) s.at_window_end(end);  // the run may go on
        ok = end - pos >= size_t(in.min);
        if (!ok) break;
        if (end - pos > size_t(in.min)) stack.push_back({pc + 1, end, pos + in.min});
        pos = end, ++pc;
        break;
      }
      case Op::Split:
        stack.push_back({in.y, pos, SIZE_MAX});
        pc = in.x;
        break;
      case Op::Jmp: pc = in.x; break;
      case Op::Look: {
        // The body runs on its own stack segment and is atomic: its choices are never revisited.
        const bool found = run(prog, s, in.x, pos, stack, steps) != SIZE_MAX;
        ok = found != (in.arg == 1);
        if (ok) ++pc;
        break;
      }
      case Op::Match: stack.resize(base); return pos;
    }
    if (ok) continue;
    if (stack.size() == base) return SIZE_MAX;
    Backtrack& b = stack.back();
    pc = b.pc;
    if (b.floor == SIZE_MAX) {
      pos = b.pos;
      stack.pop_back();
    } else {  // give back one more character of a SetRepeat run
      pos = --b.pos;
      if (b.pos == b.floor) stack.pop_back();
    }
  }
}

// Tries the top-level alternatives in order at `pos`: the end of the first match, or SIZE_MAX.
size_t match_here(const Regex::Program& prog, const Subject& s, size_t pos, std::vector<Backtrack>& stack) {
  uint64_t steps = 0;
  for (const auto& e : prog.entries) {
    if (!e.any) {
      if (s.at_window_end(pos)) continue;
      bool possible = false;
      for (size_t i = 0; !possible && i < e.first.size(); ++i)
        possible = prog.classes[e.first[i]].contains(s.chars[pos].cp, s.chars[pos].props);
      if (!possible) continue;
    }
    const size_t end = run(prog, s, e.pc, pos, stack, steps);
    if (end != SIZE_MAX) return end;
  }
  return SIZE_MAX;
}

}  // namespace

Regex Regex::compile(std::string_view pattern) {
  auto prog = std::make_shared<Program>();
  prog->pattern = std::string(pattern);
  Node root = Parser(pattern, *prog).parse();
  Compiler(pattern, *prog).compile(root);
  Regex r;
  r.pattern_ = std::string(pattern);
  r.prog_ = std::move(prog);
  return r;
}

void Regex::split_isolated(std::string_view text, std::vector<std::string_view>& out) const {
  thread_local Subject s;
  thread_local std::vector<Backtrack> stack;
  stack.clear();  // an earlier call may have thrown (backtracking limit) with entries left
  size_t window = kWindow;
  s.assign(text, 0, window);
  size_t gap = 0;  // byte where the text not matched yet starts
  for (size_t pos = 0;;) {
    if (pos == s.n) {
      if (!s.truncated) break;
      s.assign(text, s.offsets[pos], window = kWindow);
      pos = 0;
      continue;
    }
    s.hit_end = false;
    const size_t end = match_here(*prog_, s, pos, stack);
    if (s.hit_end) {  // the outcome depends on text past the window: redo from here, wider if needed
      if (pos == 0) window *= 2;
      s.assign(text, s.offsets[pos], window);
      pos = 0;
      continue;
    }
    if (end == SIZE_MAX) {
      ++pos;
      continue;
    }
    const size_t from = s.offsets[pos], to = s.offsets[end];
    if (gap < from) out.push_back(text.substr(gap, from - gap));
    if (to > from) out.push_back(text.substr(from, to - from));
    // An empty match still ends the gap (as in Hugging Face's Split); the search moves on by one.
    gap = to;
    pos = end > pos ? end : pos + 1;
  }
  if (gap < text.size()) out.push_back(text.substr(gap));
}

std::optional<size_t> Regex::match_at(std::string_view text, size_t pos) const {
  thread_local Subject s;
  thread_local std::vector<Backtrack> stack;
  stack.clear();
  s.assign(text, pos, SIZE_MAX);  // the rest of the text in one window
  MODA_CHECK(pos <= text.size() && (pos == text.size() || (static_cast<unsigned char>(text[pos]) & 0xC0) != 0x80),
             "regex match_at: byte ", pos, " is not the start of a character");
  const size_t end = match_here(*prog_, s, 0, stack);
  if (end == SIZE_MAX) return std::nullopt;
  return s.offsets[end] - pos;
}

}  // namespace moda::data
