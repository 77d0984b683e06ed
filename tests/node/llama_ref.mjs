#!/usr/bin/env node
// llama_ref.mjs — retort's llama.cpp reference: tokenize text and score token sequences with the
// prebuilt llama.cpp that node-llama-cpp 3.21.1 ships (CPU build, no download, no compile).
//
//   node llama_ref.mjs tokenize MODEL.gguf FILE [--special]
//       prints a JSON array of token ids for FILE's text (UTF-8). No BOS/EOS is added; special
//       tokens in the text are parsed only with --special. Loads the model with vocabOnly, so a
//       GGUF holding just a tokenizer (plus whatever tensors) is enough.
//   node llama_ref.mjs logits MODEL.gguf 1,2,3 OUT.f32 [--probs]
//       evaluates the ids as one sequence from position 0 and writes, for every position t, the
//       next-token distribution as T rows x V float32 little-endian: log-softmax of llama.cpp's
//       logits (natural log; i.e. logits minus their logsumexp), or the probabilities with --probs.
//   node llama_ref.mjs info MODEL.gguf
//       prints vocabulary size and type, BOS/EOS ids and whether llama.cpp would add BOS.
//
// Why log-softmax and not raw logits: node-llama-cpp exposes no raw-logits call. Its
// sequence.controlledEvaluate([[id, {generateNext: {probabilities: true}}], ...]) returns for
// every flagged position the full distribution, computed in the addon as a float32 softmax of
// llama_get_logits_ith() after the default greedy sampler chain (which leaves logits unchanged).
// Logits are only defined up to a per-position constant for this purpose, so comparisons are
// made on log-softmax.
//
// Numerics: the context uses an F32 KV cache (experimentalKvCacheKeyType/ValueType "F32") and
// no flash attention, so on CPU the whole forward pass runs in float32. Measured on the tiny
// model of tests/ref_llamacpp_gguf.sh (32 positions): max |diff| vs a float64 numpy forward of
// 2.9e-6 in log-probability; with the default F16 KV cache 2.1e-3; with flash attention (F32
// cache) 4.1e-3.
//
// What this is not: a server or a benchmark. It never downloads or builds llama.cpp: it sets
// NODE_LLAMA_CPP_SKIP_DOWNLOAD=true and calls getLlama({build: "never", gpu: false}), which fails
// with NoBinaryFoundError rather than fetching anything.

import fs from "node:fs";
import process from "node:process";

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD ??= "true";
process.env.NODE_LLAMA_CPP_GPU ??= "false";

function usage(msg) {
    if (msg) process.stderr.write(`llama_ref: ${msg}\n`);
    process.stderr.write(
        "usage: node llama_ref.mjs tokenize MODEL.gguf FILE [--special]\n" +
        "       node llama_ref.mjs logits MODEL.gguf ID,ID,... OUT.f32 [--probs]\n" +
        "       node llama_ref.mjs info MODEL.gguf\n");
    process.exit(2);
}

async function loadLlama() {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    const llama = await getLlama({
        gpu: false,
        build: "never",
        skipDownload: true,
        usePrebuiltBinaries: true,
        progressLogs: false,
        logLevel: LlamaLogLevel.error,
        maxThreads: 2,
    });
    return llama;
}

// node-llama-cpp has no vocabulary-size getter; take it from the GGUF metadata its own JS
// parser read (ARCH.vocab_size, else the length of tokenizer.ggml.tokens).
function vocabSize(model) {
    const md = model.fileInfo?.metadata ?? {};
    const arch = md.general?.architecture;
    const v = (arch && md[arch]?.vocab_size) ?? md.tokenizer?.ggml?.tokens?.length;
    if (!Number.isInteger(v) || v <= 0) throw new Error("cannot determine the vocabulary size from the GGUF metadata");
    return v;
}

function parseIds(s, nVocab) {
    const ids = s.split(",").filter((x) => x.trim() !== "").map((x) => {
        const v = Number(x);
        if (!Number.isInteger(v) || v < 0 || v >= nVocab) usage(`bad token id '${x}' (vocabulary has ${nVocab})`);
        return v;
    });
    if (ids.length === 0) usage("no token ids given");
    return ids;
}

async function cmdTokenize(modelPath, file, special) {
    const llama = await loadLlama();
    const model = await llama.loadModel({ modelPath, vocabOnly: true, gpuLayers: 0 });
    const text = fs.readFileSync(file, "utf8");
    const ids = model.tokenize(text, special);
    process.stdout.write(JSON.stringify(Array.from(ids)) + "\n");
    await model.dispose();
    await llama.dispose();
}

async function cmdInfo(modelPath) {
    const llama = await loadLlama();
    const model = await llama.loadModel({ modelPath, vocabOnly: true, gpuLayers: 0 });
    const info = {
        vocabSize: vocabSize(model),
        vocabularyType: model.vocabularyType ?? null,
        bos: model.tokens.bos ?? null,
        eos: model.tokens.eos ?? null,
        shouldPrependBosToken: model.tokens.shouldPrependBosToken ?? null,
    };
    process.stdout.write(JSON.stringify(info) + "\n");
    await model.dispose();
    await llama.dispose();
}

async function cmdLogits(modelPath, idsArg, outPath, probs) {
    const llama = await loadLlama();
    const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
    const V = vocabSize(model);
    const ids = parseIds(idsArg, V);
    const T = ids.length;
    const context = await model.createContext({
        contextSize: Math.max(T + 1, 32),
        batchSize: Math.max(T, 1),
        sequences: 1,
        threads: 2,
        flashAttention: false,
        experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32",
    });
    const seq = context.getSequence();
    const res = await seq.controlledEvaluate(ids.map((id) => [id, { generateNext: { probabilities: true } }]));
    const buf = Buffer.alloc(T * V * 4);
    for (let t = 0; t < T; t++) {
        const p = res[t]?.next?.probabilities;
        if (!p) throw new Error(`no probabilities for position ${t}`);
        if (p.size !== V) throw new Error(`position ${t}: ${p.size} probabilities, expected ${V}`);
        for (const [tok, prob] of p) {
            const v = probs ? prob : Math.log(prob);
            buf.writeFloatLE(v, (t * V + tok) * 4);
        }
    }
    fs.writeFileSync(outPath, buf);
    process.stderr.write(`llama_ref: wrote ${T} x ${V} ${probs ? "probabilities" : "log-probabilities"} to ${outPath}\n`);
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

async function main() {
    const args = process.argv.slice(2);
    const flags = new Set(args.filter((a) => a.startsWith("--")));
    const pos = args.filter((a) => !a.startsWith("--"));
    const cmd = pos[0];
    if (cmd === "tokenize" && pos.length === 3) return cmdTokenize(pos[1], pos[2], flags.has("--special"));
    if (cmd === "logits" && pos.length === 4) return cmdLogits(pos[1], pos[2], pos[3], flags.has("--probs"));
    if (cmd === "info" && pos.length === 2) return cmdInfo(pos[1]);
    usage(cmd ? `bad arguments for '${cmd}'` : "no command");
}

main().catch((e) => {
    process.stderr.write(`llama_ref: ${e?.stack ?? e}\n`);
    process.exit(1);
});
