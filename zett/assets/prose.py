"""Clean documentation markup (reStructuredText, POD, HTML) to plain English paragraphs.

Every cleaner returns text with one paragraph per line-block, paragraphs separated by a blank line, wrapped lines
joined. Code (literal blocks, doctests, ``<pre>``), tables, comments, directives' signatures and navigation are
dropped; inline markup keeps its text. ``keep_paragraph`` then removes what is left that is not running English
(headings, code fragments, list debris), and ``drop_boilerplate`` removes paragraphs repeated across many documents
of one source (page navigation, licence footers). All of it is deterministic: same bytes in, same text out.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from html.parser import HTMLParser

CLEANER_VERSION = "3"  # bump when cleaning changes: cached corpora are keyed by it

# -- paragraph filter ---------------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    "the a an of to and in is are was be for that this it with as or by on not from can which if when".split()
)
_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")


def keep_paragraph(p: str, min_words: int = 5) -> bool:
    """True for a paragraph of running English: enough words, mostly letters, with common function words."""
    words = p.split()
    if len(words) < min_words:
        return False
    chars = [c for c in p if not c.isspace()]
    letters = sum(c.isalpha() for c in chars)
    if letters < 0.75 * len(chars):  # code, tables, numbers
        return False
    alpha_words = _WORD.findall(p)
    stop = sum(w.lower() in _STOPWORDS for w in alpha_words)
    return stop >= max(1, len(alpha_words) // 20)


def finish(paragraphs: list[str], min_words: int = 5) -> str:
    """Normalise whitespace inside paragraphs, drop non-prose ones, join with blank lines."""
    out = []
    for p in paragraphs:
        p = " ".join(p.split())
        if keep_paragraph(p, min_words):
            out.append(p)
    return "\n\n".join(out)


def drop_boilerplate(docs: list[str], min_docs: int = 5) -> list[str]:
    """Remove paragraphs that occur in at least ``min_docs`` different documents (navigation, footers, licence
    notices repeated on every page). Input and output: one string per document, paragraphs split by blank lines."""
    counts: Counter[str] = Counter()
    for d in docs:
        counts.update(set(d.split("\n\n")))
    common = {p for p, n in counts.items() if n >= min_docs}
    return ["\n\n".join(p for p in d.split("\n\n") if p not in common) for d in docs]


# -- reStructuredText -----------------------------------------------------------------------------------------

# Directives whose whole block is code, data or machinery, not prose.
_RST_SKIP_DIRECTIVES = frozenset("""
    code code-block sourcecode literalinclude doctest testcode testoutput testsetup testcleanup productionlist
    math highlight toctree image figure raw csv-table list-table table kernel-doc kernel-abi kernel-feat
    kernel-include include index parsed-literal graphviz digraph flat-table tabularcolumns cssclass only
    program-output command-output ifconfig contents sectnum container ditaa audit-event audit-event-table
    opcode2 literal-block
""".split())
_DIRECTIVE = re.compile(r"^\s*\.\.\s+(?:[\w-]+:)?([\w-]+)::(.*)$")
_EXPLICIT = re.compile(r"^\s*\.\.(\s|$)")
_ADORNMENT = re.compile(r"^\s*([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")
_GRID = re.compile(r"^\s*(\+[-=+]+\+|\|.*\|)\s*$")
_SIMPLE_TABLE = re.compile(r"^\s*=+( +=+)+\s*$")
_BULLET = re.compile(r"^(\s*)([-*+•]|\d+[.)]|#\.|\(?[a-zA-Z0-9]\))\s+")
_FIELD = re.compile(r"^\s*:[^:\s`][^:`]*:(\s+|$)")
_OPTION = re.compile(r"^\s*:[\w-]+:")

_ROLE = re.compile(r":[\w:+.-]+:`([^`]*)`")
_TARGET = re.compile(r"^\s*[~!]?(.*?)\s*<[^<>]*>\s*$", re.S)
_LINK = re.compile(r"`([^`]+?)`(?:__?)?")
_LITERAL = re.compile(r"``(.+?)``")
_EMPH = re.compile(r"(\*\*|\*)(\S(?:.*?\S)?)\1")
_FOOTREF = re.compile(r"\s*\[(#\w*|\*|\d+)\]_")
_REFWORD = re.compile(r"\b(\w+)__?\b")
_SUBST = re.compile(r"\|(\w[\w -]*)\|")


def _role_text(m: re.Match) -> str:
    t = m.group(1)
    mt = _TARGET.match(t)
    return (mt.group(1) if mt else t).lstrip("~!")


def rst_inline(text: str) -> str:
    """Inline reST markup to its text: roles, links, literals, emphasis, substitutions, footnote references."""
    text = _ROLE.sub(_role_text, text)
    text = _LITERAL.sub(r"\1", text)
    text = _LINK.sub(_role_text, text)
    text = _FOOTREF.sub("", text)
    text = _EMPH.sub(r"\2", text)
    text = _SUBST.sub(r"\1", text)
    text = _REFWORD.sub(r"\1", text)
    return text.replace("\\ ", "").replace("\\", "")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def clean_rst(text: str) -> str:
    """reStructuredText (Sphinx, kernel-doc) to plain paragraphs; see the module docstring."""
    lines = text.expandtabs(8).splitlines()
    paras: list[str] = []
    cur: list[str] = []
    cur_indent = 0
    skip_above: int | None = None  # skipping a block: lines indented deeper than this (and blanks)
    in_table = False
    i = 0

    def flush():
        nonlocal cur
        if cur:
            paras.append(rst_inline(" ".join(cur)))
        cur = []

    while i < len(lines):
        line = lines[i].rstrip()
        i += 1
        ind = _indent(line)
        if skip_above is not None:
            if not line.strip() or ind > skip_above:
                continue
            skip_above = None
        if in_table:
            if _SIMPLE_TABLE.match(line) and (i >= len(lines) or not lines[i].strip()):
                in_table = False
            continue
        if not line.strip():
            flush()
            continue
        if _SIMPLE_TABLE.match(line):
            flush()
            in_table = True
            continue
        if _GRID.match(line) or _ADORNMENT.match(line):
            flush()
            continue
        if line.lstrip().startswith((">>>", "$ ", "# ")) and not cur:
            # A doctest or shell session: skip the whole paragraph.
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        d = _DIRECTIVE.match(line)
        if d:
            flush()
            if d.group(1).lower() in _RST_SKIP_DIRECTIVES:
                skip_above = ind
            else:  # prose-bearing directive (note, function, ...): drop the signature and its options
                while i < len(lines) and _OPTION.match(lines[i]) and _indent(lines[i]) > ind:
                    i += 1
                while i < len(lines) and lines[i].strip() and _indent(lines[i]) > ind \
                        and d.group(1) in {"function", "method", "class", "data", "attribute", "decorator",
                                           "exception", "describe", "option", "envvar", "c:function", "c:macro",
                                           "c:type", "c:member"}:
                    i += 1  # continuation lines of a multi-line signature
            continue
        if _EXPLICIT.match(line):  # comment, target, substitution definition, footnote
            flush()
            skip_above = ind
            continue
        b = _BULLET.match(line)
        if b:
            flush()
            line = line[b.end():]
            cur_indent = b.end()  # an item's continuation lines align with its text, not its marker
        else:
            if cur and ind != cur_indent:
                flush()  # a definition or block quote under the previous line starts a new paragraph
            if not cur:
                cur_indent = ind
        line = _FIELD.sub("", line) if line.lstrip().startswith(":") else line
        stripped = line.strip()
        if stripped.endswith("::"):
            # The next indented block is a literal (code) block.
            stripped = stripped[:-2].rstrip()
            if stripped:
                cur.append(stripped + ":")
            flush()
            skip_above = cur_indent
            continue
        cur.append(stripped)
    flush()
    return finish(paras)


# -- POD ------------------------------------------------------------------------------------------------------

_POD_CODE = re.compile(r"([A-Z])<(?:<+\s(.*?)\s>+|([^<>]*))>", re.S)
_POD_ENTITY = {"lt": "<", "gt": ">", "sol": "/", "verbar": "|", "amp": "&", "quot": '"', "apos": "'"}


def _pod_code(m: re.Match) -> str:
    code, body = m.group(1), m.group(2) if m.group(2) is not None else m.group(3)
    if code in "XZ":
        return ""
    if code == "E":
        if body.isdigit():
            return chr(int(body))
        return _POD_ENTITY.get(body, html.unescape(f"&{body};"))
    if code == "L":
        if "|" in body:
            return body.split("|", 1)[0]
        body = body.replace('"', "")
        name, _, section = body.partition("/")
        return f"{section} in {name}" if section and name else (section or name)
    return body


def pod_inline(text: str) -> str:
    """POD formatting codes (B<>, C<<  >>, L<text|target>, E<gt>, ...) to their text, innermost first."""
    for _ in range(8):
        new = _POD_CODE.sub(_pod_code, text)
        if new == text:
            break
        text = new
    return text


def clean_pod(text: str) -> str:
    """Perl POD to plain paragraphs: headings and items become paragraphs, verbatim blocks and
    ``=begin``/``=for`` regions are dropped."""
    paras: list[str] = []
    in_begin = False
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        if not block.strip():
            continue
        if in_begin:
            if block.lstrip().startswith("=end"):
                in_begin = False
            continue
        if block.startswith("="):
            cmd, _, rest = block[1:].partition(" ")
            cmd = cmd.split("\n")[0]
            if cmd == "begin":
                in_begin = "=end" not in block
            elif cmd.startswith("head") or cmd == "item":
                rest = rest.strip()
                if rest and rest not in {"*", "o"} and not rest.rstrip(".").isdigit():
                    paras.append(pod_inline(rest))
            continue
        if block[0] in " \t":  # verbatim (code)
            continue
        paras.append(pod_inline(block))
    return finish(paras)


# -- HTML -----------------------------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    "p div li dd dt h1 h2 h3 h4 h5 h6 br blockquote section article ul ol dl tr title figcaption caption hr".split()
)
_SKIP_TAGS = frozenset("script style pre table nav header footer head noscript svg math button form select "
                       "textarea iframe object aside".split())
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SKIP_CLASSES = ("navheader", "navfooter", "sphinxsidebar", "related", "footer", "breadcrumb", "toc",
                 "highlight", "sidebar", "nav-", "docs-nav", "headerlink", "literal-block", "example-contents",
                 "programlisting", "screen", "synopsis", "cmdsynopsis", "funcsynopsis", "menu-title")
_SKIP_CLASS_TOKENS = frozenset({"header", "nav-panel"})  # texinfo's "Next: ..., Up: ..." navigation


class _TextExtractor(HTMLParser):
    """Collects paragraph text from the main content element (``<main>``, ``role=main``, ``#docs-content``,
    ``div.body``/``div.book``) when the page has one, else from the whole page; skips code, tables, navigation."""

    def __init__(self, has_main: bool):
        super().__init__(convert_charrefs=True)
        self.has_main = has_main
        self.main_depth = 0  # > 0 inside the main element (counts nested same-name tags)
        self.main_tag: str | None = None
        self.skip_stack: list[str] = []
        self.paras: list[str] = []
        self.cur: list[str] = []

    def _is_main(self, tag: str, attrs: dict) -> bool:
        cls = (attrs.get("class") or "").split()
        return (tag == "main" or attrs.get("role") == "main" or attrs.get("id") == "docs-content"
                or (tag == "div" and "body" in cls))

    def _break(self):
        if self.cur:
            self.paras.append("".join(self.cur))
            self.cur = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if self.has_main and self.main_depth == 0:
            if self._is_main(tag, a):
                self.main_tag, self.main_depth = tag, 1
            return
        if self.main_tag == tag and tag not in _VOID:
            self.main_depth += 1
        if tag in _VOID:
            if tag in _BLOCK_TAGS:
                self._break()
            return
        cls = a.get("class", "")
        if (self.skip_stack or tag in _SKIP_TAGS or any(c in cls for c in _SKIP_CLASSES)
                or _SKIP_CLASS_TOKENS.intersection(cls.split())):
            self.skip_stack.append(tag)
            return
        if tag in _BLOCK_TAGS:
            self._break()

    def handle_endtag(self, tag):
        if self.has_main:
            if self.main_depth == 0:
                return
            if tag == self.main_tag:
                self.main_depth -= 1
                if self.main_depth == 0:
                    self.skip_stack.clear()
                    self._break()
                    return
        if self.skip_stack:
            if tag in self.skip_stack:  # tolerate unclosed inner tags
                while self.skip_stack and self.skip_stack.pop() != tag:
                    pass
            return
        if tag in _BLOCK_TAGS:
            self._break()

    def handle_data(self, data):
        if (not self.has_main or self.main_depth > 0) and not self.skip_stack:
            self.cur.append(data)


_MAIN = re.compile(r"<main\b|role=\"main\"|id=\"docs-content\"|<div class=\"body\"", re.I)


def clean_html(text: str) -> str:
    """HTML (Sphinx, DocBook, mdBook, Publican, asciidoc output) to plain paragraphs."""
    parser = _TextExtractor(has_main=bool(_MAIN.search(text)))
    parser.feed(text)
    parser.close()
    parser._break()
    return finish(parser.paras)


def clean_text(text: str) -> str:
    """Plain text with blank-line paragraphs (and hard line wraps)."""
    return finish(re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")))


# -- Vim help -------------------------------------------------------------------------------------------------

_VIM_TAG = re.compile(r"\*[^*\s|]+\*")
_VIM_LINK = re.compile(r"\|([^|\s]+)\|")


def clean_vimhelp(text: str) -> str:
    """Vim help files: ``*tag*`` anchors dropped, ``|link|`` kept as its text, example blocks (a line ending in
    ``>`` up to a line starting with ``<`` or the next unindented line) and ``~`` heading lines removed."""
    paras: list[str] = []
    cur: list[str] = []
    in_example = False
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        if in_example:
            if line.startswith("<"):
                in_example, line = False, line[1:]
            elif not line or line[0] in " \t":
                continue
            else:
                in_example = False
        if line.endswith(" >") or line == ">":
            line, in_example = line[:-1], True
        header = line.endswith(" ~")  # a heading: not running text
        line = _VIM_LINK.sub(r"\1", _VIM_TAG.sub("", line)).strip()
        if header or not line or _ADORNMENT.match(line):
            if cur:
                paras.append(" ".join(cur))
                cur = []
            continue
        cur.append(line)
        if in_example and cur:
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return finish(paras)


CLEANERS = {"rst": clean_rst, "pod": clean_pod, "html": clean_html, "text": clean_text, "vimhelp": clean_vimhelp}
