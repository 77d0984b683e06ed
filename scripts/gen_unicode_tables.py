#!/usr/bin/python3
"""gen_unicode_tables.py - writes src/tokenizer/unicode_tables.c, the code point classes the
GPT-2 pre-tokenizer needs: letter (\\p{L} = Lu Ll Lt Lm Lo), number (\\p{N} = Nd Nl No) and
whitespace (the Unicode White_Space property, which is what llama.cpp's list holds:
U+0009..U+000D, U+0085 and the Zs/Zl/Zp separators; NOT U+001C..U+001F, which Python's
str.isspace() would add).

Sources of the general categories, one of:
  (default)              Debian's /usr/bin/python3 unicodedata (Unicode 14.0.0 on Debian 12);
  --npm-unicode DIR      an unpacked npm package @unicode/unicode-X.Y.Z (read through node).
llama.cpp's src/unicode-data.cpp was generated from Unicode 15.1 (it has CJK Extension I,
U+2EBF0..U+2EE5D, as letters, and no 16.0 scripts), so the committed table is made with
  npm pack @unicode/unicode-15.1.0 && tar xzf unicode-unicode-15.1.0-*.tgz
  /usr/bin/python3 scripts/gen_unicode_tables.py --npm-unicode package \\
      > src/tokenizer/unicode_tables.c
--check-llama FILE compares the result, code point by code point, with the letter/number/
whitespace flags of a llama.cpp unicode-data.cpp (read as data for the comparison only) and
exits 1 on any difference. The llama.cpp that node-llama-cpp ships is a git bundle:
  git clone tests/node/node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/llama.cpp
  /usr/bin/python3 scripts/gen_unicode_tables.py --npm-unicode package \
      --check-llama /tmp/llama.cpp/src/unicode-data.cpp      # -> 0 code points differ
(Python's own unicodedata 14.0 differs from it in 5010 code points: Unicode 15.0/15.1 letters.)

What this is not: a general Unicode database; only the three classes the splitter uses.
"""
import argparse
import json
import re
import subprocess
import sys
import unicodedata

MAX_CP = 0x110000
OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
CLASS_NAMES = {OTHER: "other", LETTER: "letter", NUMBER: "number", SPACE: "space"}

# White_Space (PropList.txt) has been exactly these since Unicode 6.3; derived below from the
# categories and checked against this list so that a future data source that disagrees stops
# the script instead of silently changing tokenization.
WHITE_SPACE = sorted(
    list(range(0x09, 0x0E)) + [0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B))
    + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000])

NODE_DUMP = r"""
const dir = process.argv[1];
const out = {};
for (const cat of ['Letter', 'Number', 'Separator']) {
  const m = await import(dir + '/General_Category/' + cat + '/ranges.mjs');
  out[cat] = m.default.map(r => [r.begin, r.end]);
}
const pkg = JSON.parse((await import('fs')).readFileSync(dir + '/package.json', 'utf8'));
out.name = pkg.name;
console.log(JSON.stringify(out));
"""


def classes_from_python():
    cls = bytearray(MAX_CP)
    sep = set()
    for cp in range(MAX_CP):
        cat = unicodedata.category(chr(cp))
        if cat[0] == "L":
            cls[cp] = LETTER
        elif cat[0] == "N":
            cls[cp] = NUMBER
        elif cat[0] == "Z":
            sep.add(cp)
    return cls, sep, "Unicode %s (Python %s unicodedata)" % (
        unicodedata.unidata_version, sys.version.split()[0])


def classes_from_npm(pkg_dir):
    import os
    pkg_dir = os.path.abspath(pkg_dir)
    res = subprocess.run(["node", "--input-type=module", "-e", NODE_DUMP, pkg_dir],
                         check=True, capture_output=True, text=True)
    data = json.loads(res.stdout)
    cls = bytearray(MAX_CP)
    for a, b in data["Letter"]:
        for cp in range(a, b):
            cls[cp] = LETTER
    for a, b in data["Number"]:
        for cp in range(a, b):
            assert cls[cp] == OTHER, hex(cp)
            cls[cp] = NUMBER
    sep = set()
    for a, b in data["Separator"]:
        sep.update(range(a, b))
    version = re.sub(r"^@unicode/unicode-", "", data["name"])
    return cls, sep, "Unicode %s (npm %s)" % (version, data["name"])


def add_whitespace(cls, separators):
    ws = sorted(set(range(0x09, 0x0E)) | {0x85} | separators)
    if ws != WHITE_SPACE:
        sys.exit("gen_unicode_tables: White_Space derived from the data (%s) differs from the "
                 "expected list; check the data source" % [hex(c) for c in ws])
    for cp in ws:
        assert cls[cp] == OTHER
        cls[cp] = SPACE


def ranges(cls):
    out = [(0, cls[0])]
    for cp in range(1, MAX_CP):
        if cls[cp] != out[-1][1]:
            out.append((cp, cls[cp]))
    return out


def check_llama(cls, path):
    """Compare with llama.cpp's unicode-data.cpp: ranges_flags (start, flags) and the
    whitespace set. Flags: NUMBER 0x0002, LETTER 0x0004 (see llama.cpp unicode.h)."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r"unicode_ranges_flags\s*=\s*\{(.*?)\n\};", text, re.S)
    starts = [(int(a, 16), int(f, 16)) for a, f in
              re.findall(r"\{0x([0-9A-Fa-f]+),\s*0x([0-9A-Fa-f]+)\}", m.group(1))]
    m = re.search(r"unicode_set_whitespace\s*=\s*\{(.*?)\};", text, re.S)
    ws = {int(a, 16) for a in re.findall(r"0x([0-9A-Fa-f]+)", m.group(1))}
    ref = bytearray(MAX_CP)
    for i in range(len(starts) - 1):
        a, f = starts[i]
        b = starts[i + 1][0]
        c = LETTER if f & 0x4 else NUMBER if f & 0x2 else OTHER
        for cp in range(a, min(b, MAX_CP)):
            ref[cp] = c
    for cp in ws:
        ref[cp] = SPACE
    bad = [cp for cp in range(MAX_CP) if ref[cp] != cls[cp]]
    for cp in bad[:40]:
        print("U+%04X: ours %s, llama.cpp %s" % (cp, CLASS_NAMES[cls[cp]], CLASS_NAMES[ref[cp]]),
              file=sys.stderr)
    print("check-llama: %d code points differ" % len(bad), file=sys.stderr)
    return not bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--npm-unicode", metavar="DIR")
    ap.add_argument("--check-llama", metavar="UNICODE_DATA_CPP")
    args = ap.parse_args()
    if args.npm_unicode:
        cls, sep, source = classes_from_npm(args.npm_unicode)
    else:
        cls, sep, source = classes_from_python()
    add_whitespace(cls, sep)
    if args.check_llama:
        sys.exit(0 if check_llama(cls, args.check_llama) else 1)
    rs = ranges(cls)
    w = sys.stdout.write
    w("/*\n * unicode_tables.c - GENERATED by scripts/gen_unicode_tables.py; do not edit.\n")
    w(" * Source: %s.\n" % source)
    w(" * Code point classes for the GPT-2 pre-tokenizer: letter = \\p{L}, number = \\p{N},\n")
    w(" * space = White_Space (llama.cpp's list), other = everything else (incl. unassigned).\n")
    w(" * %d ranges: range i covers [tokenizer_ucd_start[i], tokenizer_ucd_start[i+1]).\n" % len(rs))
    w(" * What this is not: a Unicode database; nothing here but these classes.\n */\n")
    w('#include "unicode.h"\n\n')
    w("const size_t tokenizer_ucd_n = %d;\n\n" % len(rs))
    w("const uint32_t tokenizer_ucd_start[%d] = {\n" % len(rs))
    for i in range(0, len(rs), 8):
        w("    " + ", ".join("0x%05X" % a for a, _ in rs[i:i + 8]) + ",\n")
    w("};\n\n")
    w("/* TOKENIZER_UCD_OTHER 0, _LETTER 1, _NUMBER 2, _SPACE 3 */\n")
    w("const uint8_t tokenizer_ucd_class[%d] = {\n" % len(rs))
    for i in range(0, len(rs), 24):
        w("    " + ",".join("%d" % c for _, c in rs[i:i + 24]) + ",\n")
    w("};\n\n")
    w("/* The same classes for U+0000..U+00FF, for the common case without a search. */\n")
    w("const uint8_t tokenizer_ucd_latin1[256] = {\n")
    for i in range(0, 256, 32):
        w("    " + ",".join("%d" % cls[c] for c in range(i, i + 32)) + ",\n")
    w("};\n")


if __name__ == "__main__":
    main()
