#!/usr/bin/env python3
"""Plain text from unpacked Debian documentation packages (tools/make_corpus.sh, docs/corpus.md).

Python 3.11+ standard library only (no man, groff, pandoc): runs the same here and on the GPU host.

    corpus_text.py --packages tools/corpus-packages.tsv --unpacked DIR --out DIR [--jobs N]

DIR/<package>/ holds `dpkg -x` of each package. Each package's files (chosen by the rules in
RULES) are turned into plain-text documents by a reader for their markup (HTML, roff, RST,
AsciiDoc, Markdown, dictd databases, plain text), then:

  * paragraphs (blocks between blank lines) of >= 40 characters seen earlier are dropped (exact
    dedup after whitespace folding; held-out domains are read first, so the training text never
    repeats a held-out paragraph and a held-out set is never thinned by the training packages);
  * a training document goes to the in-domain validation split when sha256(package/path) mod
    100 == 0 (about 1 % of the documents), else to training;
  * documents of one output file are separated by <|endoftext|>.

Writes OUT/train/<package>.txt, OUT/val_indomain.txt, OUT/val_<domain>.txt and
OUT/text_stats.json. Output depends only on the packages' contents (sorted paths, no time, no
randomness).
"""
import argparse
import base64
import gzip
import hashlib
import html.parser
import json
import multiprocessing
import os
import re
import sys

EOT = "<|endoftext|>"
DEDUP_MIN_CHARS = 40
MIN_DOC_CHARS = 200
VAL_INDOMAIN_MOD = 100  # doc hash % 100 == 0 -> in-domain validation
DICT_CHUNK_CHARS = 50_000  # dictd entries are grouped into documents of about this size

# package -> list of (path regex relative to the unpacked root, reader). Paths are walked in
# sorted order; symbolic links are skipped (they only repeat pages).
RULES = {
    "dict-gcide": [(r"usr/share/dictd/gcide\.dict\.dz$", "dictd")],
    "dict-wn": [(r"usr/share/dictd/wn\.dict\.dz$", "dictd")],
    "dict-foldoc": [(r"usr/share/dictd/foldoc\.dict\.dz$", "dictd")],
    "jargon-text": [(r"usr/share/doc/jargon-text/jargon\.txt\.gz$", "plain")],
    "linux-doc-6.1": [
        (r"usr/share/doc/linux-doc-6\.1/Documentation/(?!translations/|devicetree/|ABI/|sphinx)"
         r".*\.(rst|txt)(\.gz)?$", "rst"),
    ],
    "python3.11-doc": [(r"usr/share/doc/python3\.11/html/_sources/.*\.txt$", "rst")],
    "cmake-doc": [(r"usr/share/doc/cmake-data/html/_sources/.*\.txt$", "rst")],
    "sphinx-doc": [(r"usr/share/doc/sphinx-doc/html/_sources/.*\.txt$", "rst")],
    "perl-doc": [(r"usr/share/man/man[13]/.*\.gz$", "roff")],
    "manpages": [(r"usr/share/man/man\d/.*\.gz$", "roff")],
    "manpages-dev": [(r"usr/share/man/man\d/.*\.gz$", "roff")],
    "git-doc": [(r"usr/share/doc/git-doc/(?!RelNotes/).*\.txt$", "asciidoc")],
    "nodejs-doc": [(r"usr/share/doc/nodejs/api/.*\.md(\.gz)?$", "markdown")],
    "postgresql-doc-15": [(r"usr/share/doc/postgresql-doc-15/html/.*\.html$", "html")],
    "sqlite3-doc": [(r"usr/share/doc/sqlite3/.*\.html$", "html")],
    "python-django-doc": [(r"usr/share/doc/python-django-doc/html/(?!_modules/|genindex|py-modindex).*\.html$", "html")],
    "vim-doc": [(r"usr/share/doc/vim/html/.*\.html$", "html")],
    "zsh-doc": [(r"usr/share/doc/zsh-common/html/.*\.html$", "html")],
    "abs-guide": [(r"usr/share/doc/abs-guide/html/.*\.html$", "html")],
    "debian-reference-en": [(r"usr/share/debian-reference/.*\.en\.html$", "html")],
    "rust-doc": [
        (r"usr/share/doc/rust-doc/html/(book|reference|nomicon|rust-by-example|edition-guide|embedded-book|"
         r"rustc|cargo|rustdoc|style-guide)/(?!print\.html|searchindex|toc).*\.html$", "html"),
        (r"usr/share/doc/rust-doc/html/std/(?!arch/|simd/).*\.html$", "html"),
    ],
    "gnuplot-doc": [(r"usr/share/doc/gnuplot/htmldocs/.*\.html$", "html")],
    "mit-scheme-doc": [(r"usr/share/doc/mit-scheme-doc/html/.*\.html$", "html")],
    "erlang-doc": [(r"usr/share/doc/erlang-doc/.*/doc/html/(?!java/).*\.html$", "html")],
    "fortunes": [(r"usr/share/games/fortunes/[a-z-]+$", "fortune")],
    "maxima-doc": [(r"usr/share/doc/maxima-doc/html/.*\.html$", "html")],
    "octave-doc": [(r"usr/share/doc/octave/octave\.html/.*\.html$", "html")],
    "cppreference-doc-en-html": [(r"usr/share/cppreference/doc/html/en/.*\.html$", "html")],
    "lilypond-doc-html": [(r"usr/share/doc/lilypond/html/Documentation/(learning|notation|usage|extending|"
                           r"essay|music-glossary|contributor|web|changes)/.*\.html$", "html")],
    "openjdk-17-doc": [(r"usr/share/doc/openjdk-17-jre-headless/api/(?!index-files/|src-html/|.*class-use/|.*package-tree|.*-summary).*\.html$", "html")],
    "python-pandas-doc": [(r"usr/share/doc/python-pandas-doc/html/_sources/.*\.rst\.txt$", "rst")],
    "sword-text-kjv": [(r"usr/share/sword/modules/texts/ztext/[^/]+/[on]t\.bzz$", "sword")],
    "sword-text-web": [(r"usr/share/sword/modules/texts/ztext/[^/]+/[on]t\.bzz$", "sword")],
    "debian-policy": [(r"usr/share/doc/debian-policy/policy\.txt(\.gz)?$", "rst")],
    "debian-history": [(r"usr/share/doc/debian-history/docs/.*\.en\.txt(\.gz)?$", "plain")],
}


# ---------------------------------------------------------------------------------------------
# readers: bytes of one file -> list of (doc name, text)


def decode(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_plain(name, data):
    return [(name, decode(data))]


def read_fortune(name, data):
    # entries separated by lines holding a single '%'
    text = "\n".join("" if line.strip() == "%" else line for line in decode(data).split("\n"))
    return [(name, text)]


SENSE_START = re.compile(r"^(\d+[.:]|[a-z]{1,4} \d+:|\(\w|adj |adv |n |v |Syn\.|Note:|--)")
BRACKET_LINE = re.compile(r"^\s*\[[^\]]*\]?\s*$")
PRONUNCIATION = re.compile(r"\\[^\\\n]{1,80}\\,?|\s?\((?=[^()\s]*\[)[^()\s]+(?: or [^()\s]+)*\)")


def unwrap(lines):
    """Joins hard-wrapped lines; a blank line or a line starting a new sense keeps its break."""
    out, cur = [], ""
    for line in lines:
        s = line.strip()
        if not s:
            if cur:
                out.append(cur)
            out.append("")
            cur = ""
        elif cur and not SENSE_START.match(s):
            cur += " " + s
        else:
            if cur:
                out.append(cur)
            cur = s
    if cur:
        out.append(cur)
    return "\n".join(out)


def read_dictd(name, data):
    """A dictd database (.dict.dz, already decompressed): its entries in file order, via the .index."""
    text = data
    index_path = name[: -len(".dict.dz")] + ".index"
    spans = set()
    with open(RESOLVE_ROOT + "/" + index_path, "rb") as f:
        for line in f:
            parts = line.rstrip(b"\n").split(b"\t")
            if len(parts) < 3 or parts[0].startswith(b"00-database") or parts[0].startswith(b"00database"):
                continue
            spans.add((b64num(parts[1]), b64num(parts[2])))
    docs, chunk, size, n = [], [], 0, 0
    for off, length in sorted(spans):
        entry = decode(text[off : off + length])
        entry = PRONUNCIATION.sub("", entry).replace("{", "").replace("}", "")
        lines = [ln for ln in entry.split("\n") if not BRACKET_LINE.match(ln)]
        body = re.sub(r"[ \t]{2,}", " ", unwrap(lines)).replace(" ,", ",").strip()
        if not body:
            continue
        chunk.append(body)
        size += len(body)
        if size >= DICT_CHUNK_CHARS:
            docs.append((f"{name}#{n}", "\n\n".join(chunk)))
            chunk, size, n = [], 0, n + 1
    if chunk:
        docs.append((f"{name}#{n}", "\n\n".join(chunk)))
    return docs


B64 = {c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def b64num(s):
    v = 0
    for c in s:
        v = v * 64 + B64[c]
    return v


# --- roff (man pages, also pod2man output) ---
ROFF_ESCAPES = {
    "em": "\u2014", "en": "\u2013", "bu": "\u2022", "aq": "'", "dq": '"', "lq": "\u201c", "rq": "\u201d",
    "oq": "\u2018", "cq": "\u2019", "co": "\u00a9", "rg": "\u00ae", "tm": "\u2122", "hy": "-", "mi": "-",
    "pl": "+", "eq": "=", "ga": "`", "ti": "~", "ha": "^", "lt": "<", "rt": ">", "<=": "\u2264",
    ">=": "\u2265", "!=": "\u2260", "mu": "\u00d7", "di": "\u00f7", "de": "\u00b0", "->": "\u2192",
    "<-": "\u2190", "ss": "\u00df", "sc": "\u00a7", "ba": "|", "br": "|", "rs": "\\", "sl": "/",
    "bv": "|", "fm": "'", "sd": '"', "ct": "\u00a2", "Po": "\u00a3", "Eu": "\u20ac", "ps": "\u00b6",
}
ROFF_STRINGS = {"C+": "C++", "L\"": '"', "R\"": '"', "C`": '"', "C'": '"', "Aq": "'", "lq": '"', "rq": '"',
                "R": "\u00ae", "Tm": "\u2122", "Ba": "|", "Lq": '"', "Rq": '"'}
ROFF_ESC = re.compile(
    r"\\(?:f(?:\[[^\]]*\]|\(..|.)|\((..)|\[([^\]]*)\]|\*(?:\((..)|\[([^\]]*)\]|(.))|s[-+]?\d|"
    r"[nk](?:\(..|\[[^\]]*\]|.)|[hvwlLoxXbDZ]'[^']*'|(.))")
FONT_MACROS = {"B", "I", "SM", "SB", "BR", "BI", "IB", "IR", "RB", "RI"}
SKIP_MACROS = {"TH", "IX", "PD", "RS", "RE", "in", "ti", "ne", "ft", "ps", "vs", "ll", "na", "ad", "hy", "nh",
               "ds", "nr", "so", "ie", "el", "if", "tr", "rm", "bd", "cs", "ss", "ta", "ce", "ul", "cu", "lf",
               "ig", "\\\"", "\\#", "UR", "UE", "MT", "ME", "ME", "OP", "ev", "mk", "rt", "it", "fl", "em", "pc",
               "TS", "TE", "T&", "EQ", "EN", "DT", "cc", "ec", "eo", "lg", "sy", "tm", "ab", "de1", "am", "als",
               "Vb", "Ve", "Sp", "Ip", "PS", "PE", "hw", "ch", "wh", "it", "mso"}
PARA_MACROS = {"PP", "LP", "P", "sp", "br", "HP", "bp", "TP", "TQ", "IP", "SH", "SS", "SY", "YS"}


def roff_inline(s):
    def rep(m):
        g = m.groups()
        if g[0] is not None:
            return ROFF_ESCAPES.get(g[0], "")
        if g[1] is not None:
            return ROFF_ESCAPES.get(g[1], "")
        for k in (g[2], g[3], g[4]):
            if k is not None:
                return ROFF_STRINGS.get(k, "")
        c = g[5]
        if c is None:
            return ""
        return {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "'": "'", "`": "`",
                ".": ".", "%": "", "&": "", "|": "", "^": "", "c": "", "d": "", "u": "", "p": "",
                "t": "\t", "a": "", "}": "", "{": "", "!": "", "\"": ""}.get(c, "")

    s = s.split('\\"')[0] if '\\"' in s else s  # comment to end of line
    return ROFF_ESC.sub(rep, s)


def roff_args(rest):
    args, cur, quoted, i = [], "", False, 0
    while i < len(rest):
        c = rest[i]
        if c == '"':
            if quoted and i + 1 < len(rest) and rest[i + 1] == '"':
                cur += '"'
                i += 1
            else:
                quoted = not quoted
        elif c in " \t" and not quoted:
            if cur:
                args.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if cur:
        args.append(cur)
    return args


def read_roff(name, data):
    text = decode(data)
    if text.lstrip().startswith(".so ") and text.count("\n") <= 2:
        return []
    out, para, nofill, skip_block = [], [], False, None

    def flush():
        if para:
            out.append((" " if not nofill else "\n").join(para).strip())
            para.clear()

    for raw in text.split("\n"):
        if skip_block is not None:
            if raw.strip() == skip_block or raw.startswith(skip_block):
                skip_block = None
            continue
        if raw.startswith(".") or raw.startswith("'"):
            m = re.match(r"^[.'][ \t]*([^ \t]*)[ \t]*(.*)$", raw)
            mac, rest = m.group(1), m.group(2)
            if mac in ("de", "de1", "am", "ig"):
                skip_block = ".."
                continue
            if mac in ("TS",):
                flush()
                skip_block = ".TE"
                continue
            if mac in ("EQ",):
                skip_block = ".EN"
                continue
            if mac == "nf" or mac == "EX":
                flush()
                nofill = True
                continue
            if mac == "fi" or mac == "EE":
                flush()
                nofill = False
                continue
            if mac in PARA_MACROS:
                flush()
                args = roff_args(roff_inline(rest)) if rest else []
                if mac in ("SH", "SS") and args:
                    out.append(" ".join(args))
                elif mac == "IP" and args and args[0] not in ("\u2022", "*", "-", "o"):
                    para.append(args[0])
                continue
            if mac in FONT_MACROS:
                args = roff_args(rest)
                joiner = "" if len(mac) == 2 and mac not in ("SM", "SB") else " "
                t = roff_inline(joiner.join(args))
                if t:
                    para.append(t)
                continue
            continue  # any other request or macro: dropped
        line = roff_inline(raw)
        if not line.strip():
            if not nofill:
                flush()
            else:
                para.append("")
            continue
        para.append(line if nofill else line.strip())
    flush()
    return [(name, "\n\n".join(p for p in out if p))]


# --- HTML ---
BLOCK_TAGS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dt", "dd", "pre", "tr",
              "table", "section", "article", "blockquote", "br", "hr", "td", "th", "figure", "caption",
              "main", "header", "body", "summary", "details", "center"}
SKIP_TAGS = {"script", "style", "head", "nav", "footer", "noscript", "svg", "button", "form", "select",
             "textarea", "template", "iframe", "object"}
SKIP_CLASS = {"sphinxsidebar", "sphinxsidebarwrapper", "related", "headerlink", "navigation", "navheader",
              "navfooter", "footer", "sidebar", "sidebar-elems", "breadcrumb", "breadcrumbs", "toc", "menu",
              "menu-bar", "searchbar", "search-form", "search-container", "rustdoc-breadcrumbs", "src-link",
              "srclink", "since", "out-of-band", "anchor", "copyright", "hidden", "visually-hidden",
              "mobile-topbar", "sub-heading", "notable-traits", "tooltip", "nav-wrapper", "nav-chapters",
              "mobile-nav-chapters", "t-navbar", "editsection", "printfooter", "catlinks", "mw-jump",
              "subNav", "topNav", "bottomNav", "header", "nav-down", "nav-up", "sub-nav", "flex-search",
              "skip-nav", "legal-copy", "navbar", "bd-sidebar", "bd-toc", "prev-next-area", "bd-header",
              "bd-footer", "bd-search", "toctree-wrapper", "node", "nav-panel", "navfoot", "navhead",
              "nav-sidebar", "searchbox", "search"}
VOID = {"br", "img", "meta", "link", "input", "hr", "wbr", "source", "area", "col", "embed", "param", "track",
        "base", "keygen"}


class HtmlText(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self.cur, self.stack, self.skip_at, self.pre = [], [], [], None, 0

    def _break(self):
        if self.cur:
            t = "".join(self.cur)
            if self.pre:
                t = t.strip("\n")
            else:
                t = " ".join(t.split())
            if t.strip():
                self.blocks.append(t)
            self.cur = []

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            if tag in ("br", "hr") and self.skip_at is None:
                if self.pre:
                    self.cur.append("\n")
                else:
                    self._break()
            return
        self.stack.append(tag)
        if self.skip_at is None:
            cls = ""
            hidden = False
            for k, v in attrs:
                if k in ("class", "id", "role") and v:
                    cls += " " + v
                if k == "hidden" or (k == "style" and v and "display:none" in v.replace(" ", "")):
                    hidden = True
            if tag in SKIP_TAGS or hidden or (cls and not SKIP_CLASS.isdisjoint(cls.split())):
                self.skip_at = len(self.stack)
                return
            if tag in BLOCK_TAGS:
                self._break()
            if tag == "pre":
                self.pre += 1
            elif tag in ("td", "th"):
                self.cur.append(" ")

    def handle_endtag(self, tag):
        if tag in VOID or tag not in self.stack:
            return
        while self.stack:
            t = self.stack.pop()
            if self.skip_at is not None and len(self.stack) < self.skip_at:
                self.skip_at = None
            elif self.skip_at is None:
                if t in BLOCK_TAGS:
                    self._break()
                if t == "pre" and self.pre:
                    self.pre -= 1
            if t == tag:
                break

    def handle_data(self, data):
        if self.skip_at is None:
            self.cur.append(data)

    def text(self):
        self._break()
        return "\n\n".join(self.blocks)


def read_html(name, data):
    p = HtmlText()
    p.feed(decode(data))
    p.close()
    return [(name, p.text())]


# --- reStructuredText (Sphinx sources) ---
ADORNMENT = re.compile(r"^\s*([=\-~^\"'`#*+:.<>_])\1{2,}\s*$")
DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:.-]+)::\s?(.*)$")
COMMENT = re.compile(r"^(\s*)\.\.(\s|$)")
FIELD_OPT = re.compile(r"^\s+:[\w .-]+:")
DROP_BODY = {"toctree", "index", "raw", "only", "include", "kernel-doc", "tabularcolumns", "image", "figure",
             "contents", "highlight", "literalinclude", "csv-table", "cssclass", "sectionauthor",
             "moduleauthor", "kernel-feat", "kernel-abi", "kernel-include", "graphviz", "productionlist",
             "autosummary", "automodule", "autoclass", "rst-class", "math", "doctest", "testsetup",
             "testcleanup", "testcode", "testoutput", "list-table", "flat-table", "table", "cmake-module"}
KEEP_ARG = {"note", "warning", "versionadded", "versionchanged", "deprecated", "seealso", "tip", "important",
            "attention", "caution", "danger", "hint", "admonition", "topic", "rubric", "centered"}
ROLE = re.compile(r":[\w:+.-]+:`([^`]*)`")
REF = re.compile(r"`([^`<]*?)\s*<[^`>]*>`__?")
INTERP = re.compile(r"``([^`]+)``")
NAMED = re.compile(r"`([^`]+)`_{1,2}")
BACKTICK = re.compile(r"`([^`]+)`")
STRONG = re.compile(r"\*\*([^*\n]+)\*\*")
EMPH = re.compile(r"(?<![\w*])\*([^*\s][^*\n]*?)\*(?![\w*])")
SUBST_DEF = re.compile(r"^\s*\.\. \|[^|]+\|")


def rst_inline(s):
    def role(m):
        t = m.group(1)
        mm = re.match(r"^(.*?)\s*<[^<>]*>$", t, re.S)
        if mm and mm.group(1):
            t = mm.group(1)
        return t.lstrip("~!")

    s = ROLE.sub(role, s)
    s = REF.sub(r"\1", s)
    s = INTERP.sub(r"\1", s)
    s = NAMED.sub(r"\1", s)
    s = BACKTICK.sub(r"\1", s)
    s = STRONG.sub(r"\1", s)
    s = EMPH.sub(r"\1", s)
    if s.endswith("::") and not s.endswith(" ::"):
        s = s[:-1]
    elif s.strip() == "::":
        s = ""
    return s


def read_rst(name, data):
    lines = decode(data).split("\n")
    out, drop_indent = [], None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if drop_indent is not None:
            if not stripped or indent > drop_indent:
                continue
            drop_indent = None
        if ADORNMENT.match(line):
            continue
        m = DIRECTIVE.match(line)
        if m:
            kind = m.group(2).split(":")[-1]
            if kind in DROP_BODY or m.group(2).startswith(("c:", "py:", "cpp:", "js:", "std:", "cmake:")) and \
                    kind not in ("function", "method", "class", "data", "attribute", "exception", "module"):
                drop_indent = len(m.group(1))
                continue
            arg = m.group(3).strip()
            if arg and (kind in KEEP_ARG or kind in ("function", "method", "class", "data", "attribute",
                                                     "exception", "module", "macro", "type", "struct",
                                                     "member", "enum", "var", "command", "variable",
                                                     "decorator", "opcode", "option", "envvar",
                                                     "describe", "code-block", "code", "sourcecode")):
                if kind not in ("code-block", "code", "sourcecode"):
                    out.append(m.group(1) + rst_inline(arg))
            continue
        if SUBST_DEF.match(line) or COMMENT.match(line):
            drop_indent = indent
            continue
        if FIELD_OPT.match(line) and out and not out[-1].strip() == "":
            # a directive's options (":maxdepth: 2") directly below it
            prev = out[-1]
            if prev.lstrip().startswith(".."):
                continue
        out.append(rst_inline(line.rstrip()))
    return [(name, dedent_blocks("\n".join(out)))]


def dedent_blocks(text):
    # drop the common indentation of each paragraph (RST bodies indented under directives)
    paras = text.split("\n\n")
    res = []
    for p in paras:
        ls = p.split("\n")
        ind = min((len(x) - len(x.lstrip()) for x in ls if x.strip()), default=0)
        res.append("\n".join(x[ind:] for x in ls))
    return "\n\n".join(res)


# --- AsciiDoc (git-doc) ---
ADOC_DROP = re.compile(r"^([-=~^+.*_/]{4,}|\[\[.*\]\]|\[[^\]]*\]|:[\w-]+:.*|(include|ifdef|ifndef|endif)::.*|"
                       r"'''+|//.*)\s*$")
ADOC_LINKGIT = re.compile(r"linkgit:([\w.-]+)\[(\d)\]")
ADOC_LINK = re.compile(r"(?:link|https?|ftp|mailto):[^\s\[]*\[([^\]]*)\]")
ADOC_ATTR = {"{litdd}": "--", "{tilde}": "~", "{caret}": "^", "{startsb}": "[", "{endsb}": "]",
             "{apostrophe}": "'", "{backtick}": "`", "{asterisk}": "*", "{plus}": "+", "{empty}": "",
             "{nbsp}": " ", "{vbar}": "|", "{sp}": " ", "{amp}": "&", "{lt}": "<", "{gt}": ">"}


def read_asciidoc(name, data):
    out = []
    for line in decode(data).split("\n"):
        if ADOC_DROP.match(line.strip()) and line.strip():
            continue
        line = ADOC_LINKGIT.sub(r"\1(\2)", line)
        line = ADOC_LINK.sub(r"\1", line)
        for k, v in ADOC_ATTR.items():
            line = line.replace(k, v)
        line = re.sub(r"`([^`\n]+)`", r"\1", line)
        line = re.sub(r"(?<![\w'])'([^'\n]+)'(?![\w'])", r"\1", line)
        line = re.sub(r"::$", ":", line.rstrip())
        line = re.sub(r"^\+$", "", line)
        out.append(line)
    return [(name, "\n".join(out))]


# --- Markdown (Node.js API docs) ---
def read_markdown(name, data):
    text = decode(data)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    out = []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("```") or re.match(r"^\[[^\]]+\]:\s", s) or re.match(r"^<a id=.*</a>$", s):
            continue
        line = re.sub(r"^#{1,6}\s+", "", line)
        line = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", line)
        line = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", line)
        line = re.sub(r"\[([^\]]+)\](?!\()", r"\1", line)
        line = re.sub(r"`([^`\n]+)`", r"\1", line)
        line = re.sub(r"\*\*([^*\n]+)\*\*", r"\1", line)
        line = re.sub(r"<[^<>\n]+>", "", line) if re.search(r"</?[a-z][^<>]*>", line) else line
        out.append(line.rstrip())
    return [(name, "\n".join(out))]


def read_sword(name, data):
    """A SWORD zText module (.bzz: zlib blocks listed in .bzs, 12 bytes each: offset, size, raw size).
    Blocks in order hold the verses in order; their OSIS/GBF/ThML markup is dropped."""
    import struct
    import zlib

    with open(RESOLVE_ROOT + "/" + name[:-4] + ".bzs", "rb") as f:
        idx = f.read()
    parts = []
    for i in range(0, len(idx) - 11, 12):
        off, size, _ = struct.unpack("<III", idx[i : i + 12])
        if size:
            parts.append(zlib.decompress(data[off : off + size]))
    text = decode(b"".join(parts))
    text = re.sub(r"<note[^>]*>.*?</note>", "", text, flags=re.S)
    text = re.sub(r"<(title|div)[^>]*/?>", "\n\n", text)
    text = re.sub(r"<[^<>]*>", "", text)
    text = text.replace("\x00", "\n")
    text = re.sub(r"[ \t]+", " ", text)
    lines = [ln.strip() for ln in text.split("\n")]
    return [(name, "\n".join(lines))]


READERS = {"sword": read_sword, "plain": read_plain, "fortune": read_fortune, "dictd": read_dictd, "roff": read_roff, "html": read_html,
           "rst": read_rst, "asciidoc": read_asciidoc, "markdown": read_markdown}

# ---------------------------------------------------------------------------------------------

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b\ufeff]")
BLANKS = re.compile(r"\n\s*\n")


def normalize(text):
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace(EOT, "")
    text = CONTROL.sub("", text)
    text = text.replace("\u00a0", " ")
    lines = [ln.rstrip() for ln in text.split("\n")]
    text = "\n".join(lines)
    text = BLANKS.sub("\n\n", text)
    return text.strip("\n")


RESOLVE_ROOT = ""


def package_docs(job):
    """(package, root) -> (package, raw bytes, [(doc name, text)])"""
    global RESOLVE_ROOT
    pkg, root = job
    RESOLVE_ROOT = root
    rules = [(re.compile(rx), fmt) for rx, fmt in RULES[pkg]]
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                continue
            for rx, fmt in rules:
                if rx.search(rel):
                    paths.append((rel, fmt))
                    break
    raw, docs = 0, []
    for rel, fmt in sorted(paths):
        with open(os.path.join(root, rel), "rb") as f:
            data = f.read()
        if rel.endswith((".gz", ".dz")):  # .dict.dz (dictzip) is gzip
            data = gzip.decompress(data)
        raw += len(data)
        try:
            for dname, text in READERS[fmt](rel, data):
                text = normalize(text)
                if len(text) >= MIN_DOC_CHARS:
                    docs.append((dname, text))
        except Exception as e:  # a malformed file: say which, keep going
            print(f"corpus_text: {pkg}: {rel}: {type(e).__name__}: {e}", file=sys.stderr)
    return pkg, raw, len(paths), docs


def doc_hash(pkg, name):
    return int.from_bytes(hashlib.sha256(f"{pkg}/{name}".encode()).digest()[:8], "big")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packages", required=True, help="tools/corpus-packages.tsv")
    ap.add_argument("--unpacked", required=True, help="folder with one dpkg -x folder per package")
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()

    table = []  # (package, role) in file order
    with open(a.packages, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            pkg, role = cols[0], cols[2]
            if pkg not in RULES:
                sys.exit(f"corpus_text: {a.packages}: no reading rule for package {pkg}")
            table.append((pkg, role))
    # held-out domains first (see the module comment), then training packages, each in file order
    order = [t for t in table if t[1] != "train"] + [t for t in table if t[1] == "train"]
    jobs = [(pkg, os.path.join(a.unpacked, pkg)) for pkg, _ in order]
    for _, root in jobs:
        if not os.path.isdir(root):
            sys.exit(f"corpus_text: {root}: not unpacked")
    with multiprocessing.Pool(max(1, a.jobs)) as pool:
        results = pool.map(package_docs, jobs, chunksize=1)

    os.makedirs(os.path.join(a.out, "train"), exist_ok=True)
    seen = set()
    stats = {"packages": {}, "dedup_min_chars": DEDUP_MIN_CHARS}
    val = {}  # file name -> list of docs
    for (pkg, role), (_, raw, nfiles, docs) in zip(order, results):
        kept_docs, dropped, kept_chars = [], 0, 0
        for dname, text in docs:
            paras = []
            for p in text.split("\n\n"):
                key = " ".join(p.split())
                if len(key) >= DEDUP_MIN_CHARS:
                    h = hashlib.sha1(key.encode()).digest()
                    if h in seen:
                        dropped += len(p) + 2
                        continue
                    seen.add(h)
                paras.append(p)
            t = "\n\n".join(paras).strip("\n")
            if len(t) >= MIN_DOC_CHARS:
                kept_docs.append((dname, t))
        st = {"role": role, "files": nfiles, "raw_bytes": raw, "docs": len(kept_docs), "dedup_dropped_bytes": dropped}
        if role == "train":
            tr, vi = [], []
            for dname, t in kept_docs:
                h = doc_hash(pkg, dname)
                (vi if h % VAL_INDOMAIN_MOD == 0 else tr).append(t)
            write(os.path.join(a.out, "train", pkg + ".txt"), tr)
            val.setdefault("val_indomain", []).extend(vi)
            st["text_bytes"] = sum(len(t.encode()) for t in tr)
            st["val_indomain_bytes"] = sum(len(t.encode()) for t in vi)
        else:
            domain = role.split(":", 1)[1]
            val.setdefault("val_" + domain, []).extend(t for _, t in kept_docs)
            st["text_bytes"] = sum(len(t.encode()) for _, t in kept_docs)
        stats["packages"][pkg] = st
        print(f"corpus_text: {pkg:20s} {role:16s} files {nfiles:6d}  raw {raw / 1e6:7.1f} MB  text "
              f"{st['text_bytes'] / 1e6:7.1f} MB  docs {len(kept_docs):6d}  dedup -{dropped / 1e6:.1f} MB",
              file=sys.stderr)
    for name, docs in sorted(val.items()):
        write(os.path.join(a.out, name + ".txt"), docs)
    with open(os.path.join(a.out, "text_stats.json"), "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1, sort_keys=True)
        f.write("\n")


def write(path, docs):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(("\n" + EOT).join(docs))
        f.write("\n")


if __name__ == "__main__":
    main()
