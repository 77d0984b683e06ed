#!/usr/bin/python3
"""chat_template_render.py — render chat templates with Python's Jinja2 as Hugging Face
transformers' apply_chat_template does (an ImmutableSandboxedEnvironment with trim_blocks and
lstrip_blocks, the loopcontrols extension, raise_exception, tojson; bos/eos/unk/pad tokens from
tokenizer_config.json as variables), for tests/ref_chat_template.sh.

  chat_template_render.py DIR CONVERSATIONS.jsonl GEN(0|1)
      prints one JSON line per conversation: {"text": ...} or {"error": ...}
"""
import json
import sys

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def main():
    folder, conv_path, gen = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    with open(folder + "/tokenizer_config.json", encoding="utf-8") as f:
        cfg = json.load(f)
    tmpl = cfg["chat_template"]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    compiled = env.from_string(tmpl)
    special = {k: token_text(cfg.get(k)) for k in ("bos_token", "eos_token", "unk_token", "pad_token")
               if cfg.get(k) is not None}
    with open(conv_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            messages = json.loads(line)["messages"]
            try:
                out = {"text": compiled.render(messages=messages, tools=None, documents=None,
                                               add_generation_prompt=gen, **special)}
            except TemplateError as e:
                out = {"error": str(e)}
            print(json.dumps(out, ensure_ascii=False))


main()
