"""A pure-Python port of the PTB tokenization that pycocoevalcap runs, for when Java is absent.

pycocoevalcap's ``PTBTokenizer`` runs Stanford CoreNLP 3.4.1's ``PTBTokenizer -preserveLines
-lowerCase`` and then drops the tokens in :data:`PUNCTUATIONS`. This module re-implements the
rules of that lexer (``PTBLexer.flex``) that English captions reach, the way JFlex applies
them: at each position the longest match wins (trailing context counts towards its length),
ties go to the earlier rule. tests/core/captioning/test_ptb_tokenize.py compares it with the
Java tokenizer on every Tiny COCO caption and on generated hard cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS, compared with the lower-cased tokens (so
# "-lrb-" and friends are *not* removed, exactly as in the toolkit).
PUNCTUATIONS = frozenset({"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                          ".", "?", "!", ",", ":", "-", "--", "...", ";"})

_NUMERIC_NOT_DIGIT = "\u00b2\u00b3\u00b9\u00bc-\u00be\u2070-\u209f\u2150-\u218f\u2460-\u24ff"
L = rf"[^\W\d_{_NUMERIC_NOT_DIGIT}]"  # JFlex [:letter:]
LD = rf"(?:{L}|\d)"
APOS = r"(?:['\u0092\u2019]|&apos;)"
APOSETC = rf"(?:{APOS}|[\u0091\u2018\u201b])"
SPACE = r"[ \t\u00a0\u2000-\u200a\u3000]"
WORD = rf"(?:{L}|&[aeiouAEIOU](?:acute|grave|uml);|[\u00ad\u0300-\u036f])+"
REDAUX = rf"{APOS}(?:[msdMSD]|(?i:re|ve|ll))"
SREDAUX = rf"(?i:n){APOSETC}(?i:t)"
HYPHEN = r"[-_\u058a\u2010\u2011]"
THING = (rf"(?:[dDoOlL]{APOSETC}{LD})?{LD}+"
         rf"(?:{HYPHEN}(?:[dDoOlL]{APOSETC}{LD})?{LD}+)*")
ACRO = r"[A-Za-z](?:\.[A-Za-z])+"
HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:[A-Za-z0-9\u00ad]+|{ACRO}\.))+"
NUM = r"\d*(?:[.:,\u00ad\u066b\u066c]\d+)+|\d+"  # longest first (JFlex takes the longest)
INSENTP = r"[,;:]"
# an SGML/XML tag: a name, then attributes (name, optional =value); "<a 10:30>" is no tag
SGML = (r"<\/?[A-Za-z!?][^>\s]*(?:[ \t]+[A-Za-z_:][^>\s=]*(?:=(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s>\"']+))?)*"
        r"[ \t]*\/?>")
SENTEND = rf"(?:{SPACE}|\n)(?:{SPACE}|\n|[A-Z]|{SGML})"
ABBREV1 = (r"(?:(?i:(?:ed|ph)\.d|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|mon|tue|tues|wed|thu|thurs|"
           r"fri|ala|ariz|calif|colo|conn|dak|del|fla|ga|ind|kans?|ky|la|md|mich|minn|mo|mont|neb|"
           r"nev|okla|pa|penn|tenn|tex|va|vt|wisc?|wyo|inc|cos?|corp|pp?tys?|ltd|plc|bancorp|dept|"
           r"bhd|assn|univ|intl|sys|ph|tel|est|ext|sq|ft|jr|sr|bros|blvd|rd|"
           r"esq|etc|al|seq)|A(?i:rk)|I(?i:ll)|M(?i:ass|iss)|O(?i:re)|W(?i:ash))\.")
ABBREV4 = (rf"(?:{ACRO}|(?i:mrs?|ms|drs?|profs?|sens?|reps?|attys?|lt|col|gen|messrs|govs?|adm|"
           r"rev|maj|sgt|cpl|pvt|mt|capt|ste?|ave|pres|lieut|hon|brig|co?mdr|pfc|spc|supts?|det|"
           r"vs|alex|wm|jos|cie|a\.k\.a|cf|treas|invt|elec|natl|m[ft]g)|M(?i:iss)|[A-Za-z])")
# 3.4.1: a single letter and a period before one of these words is the letter, then a period
STARTERS = "|".join(f"{w[0]}(?i:{w[1:]})" if len(w) > 1 else w for w in (
    "About According Additionally After An A As At But Earlier He Her Here However If In It Last "
    "Many More Mr. Ms. Now Once One Other Our She Since So Some Such That The Then There These "
    "They This We When While What Yet You").replace(".", "\\.").split())
LEFT, RIGHT = True, False


def _quotes(tok: str, left: bool) -> str:
    """PTBLexer's latexQuotes(): ASCII quotes by side, curly ones by their own direction."""
    tok = re.sub(r"&apos;|'", "`" if left else "'", tok)
    tok = re.sub(r'"|&quot;', "``" if left else "''", tok)
    tok = re.sub("[\u0091\u2018\u201b\u2039]", "`", tok)
    tok = re.sub("[\u0092\u2019\u203a]", "'", tok)
    tok = re.sub("[\u0093\u201c\u00ab]", "``", tok)
    return re.sub("[\u0094\u201d\u00bb]", "''", tok)


def _currency(tok: str) -> str:
    tok = tok.replace("\u00a2", "cents").replace("\u00a3", "#")
    return re.sub("[\u0080\u00a4\u20a0\u20ac]", "$", tok)


def _keep(tok: str) -> str | None:
    return tok


def _soft(tok: str) -> str:
    return tok.replace("\u00ad", "")


def _drop(tok: str) -> str | None:
    return None


def _sentence_end(tok: str) -> str | None:
    return tok


_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3"}

# (pattern, trailing context or "", action). Order is PTBLexer's rule order (ties -> first).
Rule = tuple[str, str, Callable[[str], "str | None"]]
_RULES: list[Rule] = [
    (r"(?i:can)", r"(?i:not)", _keep),
    *[(rf"(?i:{head})", rf"(?i:{tail})\b", _keep)
      for head, tail in (("gon", "na"), ("wan", "na"), ("got", "ta"), ("gim", "me"), ("lem", "me"))],
    (SGML, "", lambda t: t.replace(" ", "\u00a0")),
    (r"&(?:MD|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015]", "", lambda t: "--"),
    (r"&amp;", "", lambda t: "&"),
    (r"&(?:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);", "", _keep),
    (WORD, REDAUX, _soft),
    (r"[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*", SREDAUX, _soft),
    (WORD, "", _soft),
    (rf"{WORD}(?:\.{WORD})+", "", _soft),  # 3.4.1: "dog.cat" stays one token
    *[(alternative, "", _keep) for alternative in (  # APOWORD, one rule per alternative
        rf"{APOS}(?i:n){APOS}?", rf"[lLdDjJ]{APOS}", rf"(?i:dunkin){APOS}", rf"(?i:somethin){APOS}",
        rf"(?i:ol){APOS}", rf"{APOS}(?i:em)", rf"[A-HJ-XZn]{APOSETC}{L}{{2}}{L}*", rf"{APOS}[2-9]0(?i:s)",
        rf"{APOS}(?i:till?)", rf"{L}{L}*[aeiouyAEIOUY]{APOSETC}[aeiouA-Z]{L}*", rf"{APOS}(?i:cause)",
        r"(?i:cont'd\.?)", r"(?i:nor'easter)", r"(?i:c'mon)", r"(?i:e'er)", r"(?i:s'mores)",
        r"(?i:ev'ry)", r"(?i:li'l)", r"(?i:nat'l)")],
    (rf"{APOS}(?i:t)", r"(?i:was|is)\b", _keep),
    (rf"(?i:y){APOS}", L, _keep),
    (r"https?:\/\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-]", "", _keep),
    (r"(?:(?:(?i:www)\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})|(?:(?:[^ \t\n\f\r\"`'<>|.!?(){},\-_$]+\.)+"
     r"(?i:com|net|org|edu)))(?:\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?", "", _keep),
    (r"[a-zA-Z0-9][^ \t\n\f\r\"<>|()\u00a0]*@(?:[^ \t\n\f\r\"<>|().\u00a0]+\.)+[a-zA-Z]{2,4}", "", _keep),
    (REDAUX, r"[^A-Za-z]|$", lambda t: _quotes(t, RIGHT)),
    (SREDAUX, "", lambda t: _quotes(t, RIGHT)),
    (r"\d{1,2}[\-\/]\d{1,2}[\-\/]\d{2,4}", "", _keep),
    (rf"[\-+]?(?:{NUM})", "", _soft),
    (r"[\u207a\u207b\u208a\u208b]?(?:[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+|[\u2080-\u2089]+)", "", _keep),
    (r"(?:\d{1,4}[- \u00a0])?\d{1,4}(?:\\?\/|\u2044)\d{1,4}", "", lambda t: t.replace(" ", "\u00a0")),
    ("[\u00bc\u00bd\u00be\u2153-\u215e]", "", lambda t: _FRACTIONS.get(t, t)),
    (r"-(?:RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|(?i:pro|anti)-|S(?:&|&amp;)P-500|S(?:&|&amp;)Ls|"
     rf"(?i:cap){APOS}n|(?i:c){APOS}(?i:est)", "", lambda t: t.replace("&amp;", "&")),
    (r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?\/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}", "", _keep),
    (r"[A-Z]*\$|#", "", _keep),
    ("[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]", "", _currency),
    (r"[A-Za-z]", rf"\.(?:{SPACE}|\n)+(?:{STARTERS})(?:{SPACE}|\n)", _keep),
    (ABBREV1, SENTEND, _sentence_end),
    (r"(?i:nos?|prop)\.", rf"{SPACE}*\d", _keep),  # 3.4.1: "No." is short only before a number  # the period is lexed again: see _tokens
    (ABBREV1, "", _keep),
    (rf"{ABBREV4}\.", "", _keep),
    (ABBREV4, SPACE, _keep),
    (ACRO, rf"{SPACE}|\n", _keep),
    (rf"{APOS}[0-9][0-9]", rf"{SPACE}|\n", _keep),
    (rf"{WORD}\.", INSENTP, _soft),
    (r"(?:\([0-9]{3}\)[ \u00a0]?|[0-9]{3}[\- \u00a0.])[0-9]{3}[\- \u00a0.][0-9]{4}", "",
     lambda t: t.replace(" ", "\u00a0").replace("(", "-LRB-").replace(")", "-RRB-")),
    (r'"|&quot;', r"[A-Za-z0-9$]", lambda t: _quotes(t, LEFT)),
    (r'"|&quot;', "", lambda t: _quotes(t, RIGHT)),
    (r"\+|[%&\u2030\u2031]|~|\^|\||\\", "", _keep),
    (r"\[", "", lambda t: "-LSB-"),
    (r"\]", "", lambda t: "-RSB-"),
    (r"<|&lt;", "", lambda t: "<"),
    (r">|&gt;", "", lambda t: ">"),
    (r"\{", "", lambda t: "-LCB-"),
    (r"\}", "", lambda t: "-RCB-"),
    (r"\(", "", lambda t: "-LRB-"),
    (r"\)", "", lambda t: "-RRB-"),
    (r"-+", "", lambda t: "--" if 3 <= len(t) <= 4 else t),
    (r"\.{3,5}|(?:\.[ \u00a0]){2,4}\.|[\u0085\u2026]", "", lambda t: "..."),
    (r"@+|#+|_+", "", _keep),
    (r"[@#][A-Za-z][A-Za-z0-9_]*|[A-Za-z0-9][A-Za-z0-9_]*@[A-Za-z][A-Za-z0-9_]*", "", _keep),
    (r"\*+|(?:\\\*){1,3}", "", _keep),
    (INSENTP, "", _keep),
    (r"[?!]+", "", _keep),
    ("[.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa]", "", _keep),
    (r"=", "", _keep),
    (r"\/", "", _keep),
    (rf"{HTHING}\.", INSENTP, _soft),
    (HTHING, "", _soft),
    (rf"{THING}\.", INSENTP, _keep),
    (THING, "", _keep),
    (r"[A-Z]+(?:(?:[+&]|&amp;)[A-Z]+)+\.", INSENTP, lambda t: t.replace("&amp;", "&")),
    (r"[A-Z]+(?:(?:[+&]|&amp;)[A-Z]+)+", "", lambda t: t.replace("&amp;", "&")),
    (r"'", r"[A-Za-z][^ \t\n\r\u00a0]", lambda t: _quotes(t, LEFT)),
    (REDAUX, "", lambda t: _quotes(t, RIGHT)),
    *[(alternative, "", lambda t: _quotes(t, RIGHT)) for alternative in (  # QUOTES
        APOS, "''", "[`\u2018\u2019\u201a\u201b\u201c\u201d\u0091\u0092\u0093\u0094\u201e\u201f"
        "\u2039\u203a\u00ab\u00bb]{1,2}")],
    ("[\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00b3\u00b4-\u00ba\u00d7\u00f7\u2020-\u2023"
     "\u2032-\u2038\u2044\u207a-\u207f\u208a-\u208e\u2100-\u214f\u2190-\u21ff\u2200-\u22ff"
     "\u2300-\u23ff\u2600-\u26ff\u3012\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]",
     "", _keep),
    (r"\0|[ \t\u00a0\u2000-\u200a\u3000]+|[\u200b\u200e\u200f\ufeff]|\n|&nbsp;", "", _drop),
]
_COMPILED = [re.compile(rf"(?P<t>{main})(?:{ctx})" if ctx else rf"(?P<t>{main})")
             for main, ctx, _ in _RULES]


_NEWLINE = re.compile(r"\r\n?|\n|[\u2028\u2029\u000b\u000c]")  # not U+0085: an ellipsis in 3.4.1


def _lines(text: str) -> list[list[str]]:
    """Lex ``text`` and return its tokens line by line (newlines end lines, as -preserveLines)."""
    lines: list[list[str]] = [[]]
    pos = 0
    while pos < len(text):
        newline = _NEWLINE.match(text, pos)
        if newline is not None:
            lines.append([])
            pos = newline.end()
            continue
        best, best_rule = None, -1
        for i, pattern in enumerate(_COMPILED):
            match = pattern.match(text, pos)
            if match is not None and match.end() > (best.end() if best else pos):
                best, best_rule = match, i
        if best is None:  # untokenizable character: PTBLexer deletes it ("firstDelete")
            pos += 1
            continue
        action = _RULES[best_rule][2]
        pos = best.end("t") - (1 if action is _sentence_end else 0)  # "etc." then "." again
        made = action(best.group("t"))
        if made:
            lines[-1].append(made)
    return lines


def ptb_tokenize_all(captions: list[str]) -> list[str]:
    """Tokenize captions exactly as pycocoevalcap's ``PTBTokenizer.tokenize`` does.

    The toolkit writes the captions one a line (newlines inside a caption become spaces) to a
    file that Stanford's ``PTBTokenizer -preserveLines -lowerCase`` reads as one text, then
    drops :data:`PUNCTUATIONS`. Lexing the same joined text here keeps what crosses a line
    (an abbreviation before the next caption, the last caption having no newline).

    Args:
        captions: the raw captions, in the order the toolkit would write them.

    Returns:
        One space-joined, lower-cased token string per caption.
    """
    lines = _lines("\n".join(c.replace("\n", " ") for c in captions))
    lines += [[] for _ in range(len(captions) - len(lines))]
    return [" ".join(t for t in (tok.lower() for tok in line) if t not in PUNCTUATIONS)
            for line in lines[:len(captions)]]


def ptb_tokenize(caption: str) -> str:
    """One caption as :func:`ptb_tokenize_all` tokenizes it when it is the last of its batch."""
    return ptb_tokenize_all([caption])[0]
