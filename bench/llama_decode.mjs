#!/usr/bin/env node
// bench/llama_decode.mjs — llama.cpp's side of bench/decode_vs_llamacpp.sh: single-stream
// greedy generation of N tokens from a prompt, through node-llama-cpp 3.21.1's prebuilt
// llama.cpp (CPU, given threads). Prints JSON: prompt tokens, generated tokens, decode tokens/s
// (time from the first generated token to the last, so prompt processing is excluded).
// usage: node bench/llama_decode.mjs MODEL.gguf "prompt" N THREADS
import process from "node:process";
import { createRequire } from "node:module";
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD ??= "true";
const require = createRequire(import.meta.url);
const { getLlama, LlamaLogLevel } = await import(require.resolve("node-llama-cpp", { paths: [new URL("../tests/node/", import.meta.url).pathname] }));
const [modelPath, prompt, nArg, thArg] = process.argv.slice(2);
const N = Number(nArg ?? 128), threads = Number(thArg ?? 2);
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
                               progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: threads });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const ctx = await model.createContext({ contextSize: 256, sequences: 1, threads, batchSize: 256 });
const seq = ctx.getSequence();
const toks = model.tokenize(prompt);
let n = 0, tFirst = 0, tLast = 0;
const t0 = performance.now();
for await (const _ of seq.evaluate(toks, { temperature: 0 })) {
    n++;
    if (n === 1) tFirst = performance.now();
    tLast = performance.now();
    if (n >= N || toks.length + n >= 255) break;
}
console.log(JSON.stringify({ engine: "llama.cpp (node-llama-cpp 3.21.1)", threads, prompt_tokens: toks.length,
    generated: n, first_token_ms: tFirst - t0, decode_tokens_per_s: (n - 1) / ((tLast - tFirst) / 1000) }));
await ctx.dispose(); await model.dispose(); await llama.dispose();
