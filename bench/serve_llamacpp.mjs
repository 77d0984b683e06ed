#!/usr/bin/env node
// serve_llamacpp.mjs — the peer for bench/serve.sh: llama.cpp's own continuous batching, through
// the prebuilt llama.cpp that node-llama-cpp 3.21.1 ships (tests/node; `cd tests/node && npm ci`),
// on the same GGUF: C sequences of one context generate concurrently (node-llama-cpp batches
// them into shared llama_decode calls), each C * R requests of max_tokens tokens at
// temperature 1. Prints one JSON line per C: aggregate tokens/s and TTFT p50/p99.
// Not an HTTP server: this is the engine alone, so it bounds what llama.cpp's server could do
// on this machine (its HTTP layer would only add to it).
//
//   node bench/serve_llamacpp.mjs MODEL.gguf [--threads N] [--requests R] [--max-tokens N]
import path from "node:path";
import process from "node:process";
import { createRequire } from "node:module";

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD ??= "true";
process.env.NODE_LLAMA_CPP_GPU ??= "false";

const args = process.argv.slice(2);
const modelPath = args[0];
const opt = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : def;
};
const threads = opt("--threads", 1), reqs = opt("--requests", 8), maxTokens = opt("--max-tokens", 64);
if (!modelPath) {
    process.stderr.write("usage: node bench/serve_llamacpp.mjs MODEL.gguf [--threads N] [--requests R] [--max-tokens N]\n");
    process.exit(2);
}
const here = path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(path.join(here, "..", "tests", "node", "package.json"));
const { getLlama, LlamaLogLevel } = await import(require.resolve("node-llama-cpp"));
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
                               progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: threads });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]; };

for (const conc of [1, 4, 16]) {
    const context = await model.createContext({ sequences: conc, contextSize: 256 * conc, threads,
                                                batchSize: 512, flashAttention: false });
    const seqs = Array.from({ length: conc }, () => context.getSequence());
    const ttft = [];
    let tokens = 0;
    const t0 = performance.now();
    await Promise.all(seqs.map(async (seq, c) => {
        for (let r = 0; r < reqs; r++) {
            await seq.clearHistory();
            const prompt = model.tokenize(`Request ${r} of client ${c}: And it came to pass in those days, that`);
            const start = performance.now();
            let n = 0;
            for await (const tok of seq.evaluate(prompt, { temperature: 1, seed: c * 1000 + r })) {
                if (n === 0) ttft.push(performance.now() - start);
                n++;
                if (n >= maxTokens || model.isEogToken(tok)) break;
            }
            tokens += n;
        }
    }));
    const dt = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ label: `llamacpp_streams_${conc}`, concurrency: conc, requests: conc * reqs,
                                 completion_tokens: tokens, seconds: +dt.toFixed(3),
                                 tokens_per_s: +(tokens / dt).toFixed(1),
                                 ttft_p50_ms: +pct(ttft, 0.5).toFixed(2), ttft_p99_ms: +pct(ttft, 0.99).toFixed(2) }));
    await context.dispose();
}
await model.dispose();
