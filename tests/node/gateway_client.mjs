#!/usr/bin/env node
// gateway_client.mjs — the official `openai` npm client (tests/node), unchanged but for its
// base URL and key, against `retort gateway` (tests/ref_gateway.sh). One JSON line per call
// on stdout: what the client library made of the answer, for the shell to check.
//
//   node tests/node/gateway_client.mjs BASE_URL KEY MODEL calls
//     calls: comma-separated from chat, chat_stream, chat_stream_usage, completion,
//            completion_stream, models, echo, echo_stream, error
import path from "node:path";
import process from "node:process";
import { createRequire } from "node:module";

const [baseURL, apiKey, model, callList] = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(path.join(here, "package.json"));
const OpenAI = require("openai").default ?? require("openai");
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
const msgs = (text) => [{ role: "user", content: text }];

async function run(call) {
    switch (call) {
    case "chat": {
        const r = await client.chat.completions.create({ model, messages: msgs("And God said"), max_tokens: 6 });
        return { text: r.choices[0].message.content, finish: r.choices[0].finish_reason, usage: r.usage };
    }
    case "chat_stream":
    case "chat_stream_usage": {
        const usage = call === "chat_stream_usage";
        const s = await client.chat.completions.create({ model, messages: msgs("In the beginning"), max_tokens: 8,
                                                         stream: true, ...(usage ? { stream_options: { include_usage: true } } : {}) });
        let text = "", chunks = 0, u = null, finish = null;
        for await (const ch of s) {
            chunks++;
            if (ch.usage) u = ch.usage;
            for (const c of ch.choices) {
                text += c.delta?.content ?? "";
                if (c.finish_reason) finish = c.finish_reason;
            }
        }
        return { text, chunks, usage: u, finish };
    }
    case "completion": {
        const r = await client.completions.create({ model, prompt: "And the earth was", max_tokens: 5 });
        return { text: r.choices[0].text, finish: r.choices[0].finish_reason, usage: r.usage };
    }
    case "completion_stream": {
        const s = await client.completions.create({ model, prompt: "Let there be", max_tokens: 5, stream: true });
        let text = "", chunks = 0;
        for await (const ch of s) {
            chunks++;
            for (const c of ch.choices) text += c.text ?? "";
        }
        return { text, chunks };
    }
    case "models": {
        const list = [];
        for await (const m of client.models.list()) list.push(m.id);
        return { models: list };
    }
    case "echo": {
        const r = await client.chat.completions.create({ model, messages: msgs("ECHO-AUTH please"), max_tokens: 4 });
        return { text: r.choices[0].message.content };
    }
    case "echo_stream": {
        const s = await client.chat.completions.create({ model, messages: msgs("ECHO-AUTH please"), max_tokens: 4, stream: true });
        let text = "";
        for await (const ch of s) for (const c of ch.choices) text += c.delta?.content ?? "";
        return { text };
    }
    case "error": { // an unknown model: the upstream's 404, in OpenAI's shape, through the library's error class
        try {
            await client.chat.completions.create({ model: "no-such-model", messages: msgs("x"), max_tokens: 2 });
            return { error: null };
        } catch (e) {
            return { error: { status: e.status, type: e.constructor.name, message: e.message, code: e.code ?? null } };
        }
    }
    default: throw new Error("unknown call " + call);
    }
}

let failed = 0;
for (const call of callList.split(",")) {
    try {
        console.log(JSON.stringify({ call, ok: true, ...(await run(call)) }));
    } catch (e) {
        failed = 1;
        console.log(JSON.stringify({ call, ok: false, status: e.status ?? null, message: String(e.message ?? e) }));
    }
}
process.exit(failed);
