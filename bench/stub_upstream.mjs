#!/usr/bin/env node
// stub_upstream.mjs — the upstream for bench/gateway.sh: an OpenAI-compatible server that
// answers at once with a fixed completion (no model), so what a proxy in front of it adds is
// not lost in generation time. POST /v1/completions (stream or not; usage in the answer, or
// in the last chunk when stream_options.include_usage), GET /v1/models. Node's http module
// with keep-alive; one process per --workers (SO_REUSEPORT-free: the cluster module shares
// the listening socket). Not a test double with behaviour: it never fails.
//
//   node bench/stub_upstream.mjs --port P [--workers N] [--tokens N]
import cluster from "node:cluster";
import http from "node:http";
import process from "node:process";

const args = process.argv.slice(2);
const opt = (n, d) => { const i = args.indexOf(n); return i >= 0 ? Number(args[i + 1]) : d; };
const port = opt("--port", 0), workers = opt("--workers", 1), ntok = opt("--tokens", 1);
if (!port) { process.stderr.write("usage: node bench/stub_upstream.mjs --port P [--workers N] [--tokens N]\n"); process.exit(2); }

if (cluster.isPrimary && workers > 1) {
    for (let i = 0; i < workers; i++) cluster.fork();
    process.on("SIGTERM", () => { for (const w of Object.values(cluster.workers)) w.kill(); process.exit(0); });
} else {
    const usage = { prompt_tokens: 5, completion_tokens: ntok, total_tokens: 5 + ntok };
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on("data", (c) => chunks.push(c));
        req.on("end", () => {
            if (req.method === "GET") {
                res.writeHead(200, { "Content-Type": "application/json" });
                return res.end('{"object":"list","data":[{"id":"stub","object":"model","created":0,"owned_by":"bench"}]}');
            }
            let body = {};
            try { body = JSON.parse(Buffer.concat(chunks).toString("utf8")); } catch { /* answered anyway */ }
            const id = "cmpl-stub", created = 0;
            if (body.stream) {
                res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
                for (let i = 0; i < ntok; i++)
                    res.write(`data: {"id":"${id}","object":"text_completion","created":${created},"model":"stub","choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":${i === ntok - 1 ? '"length"' : "null"}}]}\n\n`);
                if (body.stream_options?.include_usage)
                    res.write(`data: {"id":"${id}","object":"text_completion","created":${created},"model":"stub","choices":[],"usage":${JSON.stringify(usage)}}\n\n`);
                return res.end("data: [DONE]\n\n");
            }
            const out = JSON.stringify({ id, object: "text_completion", created, model: "stub",
                                         choices: [{ index: 0, text: " the".repeat(ntok), logprobs: null, finish_reason: "length" }], usage });
            res.writeHead(200, { "Content-Type": "application/json" });
            res.end(out);
        });
    });
    server.keepAliveTimeout = 60000;
    server.listen(port, "127.0.0.1");
    process.on("SIGTERM", () => process.exit(0));
}
