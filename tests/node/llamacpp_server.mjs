#!/usr/bin/env node
// llamacpp_server.mjs — a small OpenAI-compatible server retort did not write, for
// tests/ref_gateway.sh: llama.cpp (the prebuilt one in node-llama-cpp 3.21.1) generating from a
// GGUF behind node's own http module. It is the "second kind of upstream" a gateway fronts:
//   POST /v1/completions, POST /v1/chat/completions (stream or not), GET /v1/models.
// Deliberately unlike retort serve where a real server may be: it never reports usage (the
// gateway must count tokens itself), its chat "template" is the messages' contents joined by
// "\n", and it requires its own key (--key K: anything else gets a 401 in OpenAI's shape
// that quotes the key it was sent, as OpenAI's API does). For the test's checks it also:
//   - answers a prompt containing "ECHO-AUTH" with the Authorization header it received (a
//     leak the gateway must scrub);
//   - counts requests, and streams whose client left before the end (GET /stats);
//   - with --slow-ms N, waits N ms between streamed tokens, and with --ignore-eos generates
//     until max_tokens (so a test can leave mid-stream).
//
//   node tests/node/llamacpp_server.mjs MODEL.gguf --port P --key K [--slow-ms N] [--ignore-eos] [--name NAME]
import http from "node:http";
import path from "node:path";
import process from "node:process";
import { createRequire } from "node:module";

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD ??= "true";
process.env.NODE_LLAMA_CPP_GPU ??= "false";

const args = process.argv.slice(2);
const modelPath = args[0];
const opt = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : def;
};
const port = Number(opt("--port", 0)), key = opt("--key", ""), slowMs = Number(opt("--slow-ms", 0));
const name = opt("--name", "llamacpp");
const ignoreEos = args.includes("--ignore-eos");
if (!modelPath || !port) {
    process.stderr.write("usage: node llamacpp_server.mjs MODEL.gguf --port P --key K [--slow-ms N] [--name NAME]\n");
    process.exit(2);
}
const here = path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(path.join(here, "package.json"));
const { getLlama, LlamaLogLevel } = await import(require.resolve("node-llama-cpp"));
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
                               progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: 1 });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const SEQS = 4;
const context = await model.createContext({ sequences: SEQS, contextSize: 128 * SEQS, threads: 1, batchSize: 128 });
const free = Array.from({ length: SEQS }, () => context.getSequence());
const waiting = [];
const take = () => free.length ? Promise.resolve(free.pop()) : new Promise((r) => waiting.push(r));
const give = (s) => (waiting.length ? waiting.shift()(s) : free.push(s));
const stats = { requests: 0, completed: 0, aborted: 0 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fail(res, status, message, code) {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ error: { message, type: "invalid_request_error", param: null, code } }));
}

async function generate(seq, text, maxTokens, temperature, onPiece, gone) {
    await seq.clearHistory();
    let ids = model.tokenize(text);
    if (ids.length > 100) ids = ids.slice(ids.length - 100);
    let n = 0, finish = "length";
    for await (const tok of seq.evaluate(ids, { temperature, seed: 7 })) {
        if (gone()) return "cancelled";
        if (model.isEogToken(tok)) {
            if (ignoreEos) continue; // generate until max_tokens (a test that must catch a stream mid-way)
            finish = "stop";
            break;
        }
        await onPiece(model.detokenize([tok]));
        if (++n >= maxTokens) break;
        if (slowMs) await sleep(slowMs);
    }
    return finish;
}

async function complete(req, res, body, chat) {
    stats.requests++;
    const auth = req.headers.authorization || "";
    let text = chat ? (body.messages || []).map((m) => (typeof m.content === "string" ? m.content : "")).join("\n")
                    : String(body.prompt ?? "");
    const maxTokens = Math.min(Number(body.max_tokens ?? body.max_completion_tokens ?? 16), 64);
    const temperature = Number(body.temperature ?? 1);
    const id = (chat ? "chatcmpl-" : "cmpl-") + Math.random().toString(16).slice(2);
    const created = Math.floor(Date.now() / 1000);
    let gone = false;
    res.on("close", () => { if (!res.writableFinished) gone = true; });
    const seq = await take();
    try {
        if (text.includes("ECHO-AUTH")) { // a server that leaks what it was sent
            const out = "you sent: " + auth;
            if (body.stream) {
                res.writeHead(200, { "Content-Type": "text/event-stream" });
                const ch = chat ? { index: 0, delta: { content: out }, finish_reason: "stop" }
                                : { index: 0, text: out, finish_reason: "stop" };
                res.write(`data: ${JSON.stringify({ id, object: chat ? "chat.completion.chunk" : "text_completion", created, model: name, choices: [ch] })}\n\n`);
                res.end("data: [DONE]\n\n");
            } else {
                const ch = chat ? { index: 0, message: { role: "assistant", content: out }, finish_reason: "stop" }
                                : { index: 0, text: out, finish_reason: "stop" };
                res.writeHead(200, { "Content-Type": "application/json" });
                res.end(JSON.stringify({ id, object: chat ? "chat.completion" : "text_completion", created, model: name, choices: [ch] }));
            }
            stats.completed++;
            return;
        }
        if (body.stream) {
            res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
            const obj = chat ? "chat.completion.chunk" : "text_completion";
            const send = (choice) => res.write(`data: ${JSON.stringify({ id, object: obj, created, model: name, choices: [choice] })}\n\n`);
            if (chat) send({ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null });
            const finish = await generate(seq, text, maxTokens, temperature,
                async (p) => send(chat ? { index: 0, delta: { content: p }, finish_reason: null }
                                       : { index: 0, text: p, finish_reason: null }), () => gone);
            if (finish === "cancelled") { stats.aborted++; res.destroy(); return; }
            send(chat ? { index: 0, delta: {}, finish_reason: finish } : { index: 0, text: "", finish_reason: finish });
            res.end("data: [DONE]\n\n");
        } else {
            let out = "";
            const finish = await generate(seq, text, maxTokens, temperature, async (p) => { out += p; }, () => gone);
            if (finish === "cancelled") { stats.aborted++; return; }
            const ch = chat ? { index: 0, message: { role: "assistant", content: out }, finish_reason: finish }
                            : { index: 0, text: out, finish_reason: finish };
            res.writeHead(200, { "Content-Type": "application/json" });
            res.end(JSON.stringify({ id, object: chat ? "chat.completion" : "text_completion", created, model: name, choices: [ch] }));
        }
        stats.completed++;
    } finally {
        give(seq);
    }
}

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
        try {
            if (req.method === "GET" && req.url === "/stats") {
                res.writeHead(200, { "Content-Type": "application/json" });
                return res.end(JSON.stringify(stats));
            }
            const auth = req.headers.authorization || "";
            if (auth !== `Bearer ${key}`)
                return fail(res, 401, `Incorrect API key provided: ${auth.replace(/^Bearer /, "")}.`, "invalid_api_key");
            if (req.method === "GET" && req.url === "/v1/models") {
                res.writeHead(200, { "Content-Type": "application/json" });
                return res.end(JSON.stringify({ object: "list", data: [{ id: name, object: "model", created: 0, owned_by: "llama.cpp" }] }));
            }
            if (req.method !== "POST" || (req.url !== "/v1/completions" && req.url !== "/v1/chat/completions"))
                return fail(res, 404, `no route ${req.method} ${req.url}`, "unknown_url");
            let body;
            try { body = JSON.parse(Buffer.concat(chunks).toString("utf8")); } catch (e) {
                return fail(res, 400, "invalid JSON body", null);
            }
            if (body.model !== name) return fail(res, 404, `The model '${body.model}' does not exist`, "model_not_found");
            await complete(req, res, body, req.url === "/v1/chat/completions");
        } catch (e) {
            if (!res.headersSent) fail(res, 500, String(e), null);
            else res.destroy();
        }
    });
});
server.keepAliveTimeout = 30000;
server.listen(port, "127.0.0.1", () => process.stderr.write(`llamacpp_server: ${name} on 127.0.0.1:${port}\n`));
const stop = async () => { server.close(); await context.dispose(); await model.dispose(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
