// tokenizer_export_ref.mjs — the transformers.js side of tests/ref_tokenizer_export.sh: load
// the tokenizer.json + tokenizer_config.json that `retort convert --to hf` wrote and the
// original files (an @lenml/tokenizer-* package) with @lenml/tokenizers 3.7.2, encode every
// line of TEXT with both (added tokens split out, no BOS/EOS) and compare the ids; decode the
// ids back with the exported tokenizer too. Exit 1 on any difference.
//   tokenizer_export_ref.mjs ORIG_DIR EXPORTED_DIR TEXT
import fs from 'fs';
import path from 'path';

const here = path.dirname(new URL(import.meta.url).pathname);
const { TokenizerLoader } = await import(path.join(here, 'node_modules', '@lenml', 'tokenizers', 'dist', 'main.mjs'));
const load = (dir) => TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
});
const [orig, exported, textPath] = process.argv.slice(2);
const a = load(orig), b = load(exported);
const lines = fs.readFileSync(textPath, 'utf8').split('\n').filter((l) => l.length);
let bad = 0, ntok = 0, badDecode = 0;
for (const l of lines) {
  const x = Array.from(a.encode(l, { add_special_tokens: false }));
  const y = Array.from(b.encode(l, { add_special_tokens: false }));
  ntok += x.length;
  if (JSON.stringify(x) !== JSON.stringify(y)) {
    if (bad++ < 3) {
      let k = 0;
      while (k < x.length && x[k] === y[k]) k++;
      console.log(`MISMATCH ${JSON.stringify(l.slice(0, 80))} from token ${k}: original ${JSON.stringify(x.slice(k, k + 6))}, exported ${JSON.stringify(y.slice(k, k + 6))}`);
    }
  }
  // clean_up_tokenization_spaces off on both: the export decodes losslessly (it writes false);
  // Llama 3's config asks for the cleanup, which drops spaces before punctuation
  const da = a.decode(x, { clean_up_tokenization_spaces: false }), db = b.decode(x, { clean_up_tokenization_spaces: false });
  if (da !== db && badDecode++ < 2)
    console.log(`  decode differs: original ${JSON.stringify(da.slice(0, 60))}, exported ${JSON.stringify(db.slice(0, 60))}`);
}
const bosA = Array.from(a.encode('hi')), bosB = Array.from(b.encode('hi'));
const bosSame = JSON.stringify(bosA) === JSON.stringify(bosB);
console.log(`${path.basename(exported)}: ${lines.length} lines, ${ntok} tokens: ${bad} lines differ, ${badDecode} decode differently; with special tokens added: ${bosSame ? 'same' : `original ${JSON.stringify(bosA)}, exported ${JSON.stringify(bosB)}`}`);
// BOS: the export adds what tokenizer_config.json's add_bos_token asks (as transformers' Llama
// tokenizers do); transformers.js follows only tokenizer.json's post-processor, which some
// originals (DeepSeek-V3) lack: reported, not failed.
process.exit(bad || badDecode ? 1 : 0);
