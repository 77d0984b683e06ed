"""llamacpp_convert.py — run llama.cpp's own HF -> GGUF converter (convert_hf_to_gguf.py from the
llama.cpp release node-llama-cpp 3.21.1 ships as a git bundle) on tokenizer-less folders, for
tests/ref_llamacpp_convert.sh.

  llamacpp_convert.py LLAMA_CPP_DIR STUB_DIR DIR1 OUT1.gguf [DIR2 OUT2.gguf ...]

Debian has neither transformers, tqdm nor a torch with float8 dtypes; the converter needs
them only for things these folders do not use, so: STUB_DIR provides a `transformers` whose
AutoConfig fails (the converter then reads config.json itself, as it does for remote-code
models) and a no-op `tqdm`; missing torch dtypes are aliased so the converter's dtype tables
build; and set_vocab writes only the vocabulary size (the folders have no tokenizer files:
retort convert gets --no-tokenizer for the same comparison). Everything else — key names,
tensor names, the llama Q/K permutation, rope_freqs — is llama.cpp's code, unchanged.
"""
import sys

lcpp, stub = sys.argv[1], sys.argv[2]
sys.path[:0] = [stub, lcpp, lcpp + "/gguf-py"]
import torch  # noqa: E402

for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "uint16", "uint32", "uint64"):
    if not hasattr(torch, n):
        setattr(torch, n, torch.int8)
import convert_hf_to_gguf as conv  # noqa: E402


def vocab_size_only(self):
    self.gguf_writer.add_vocab_size(self.hparams["vocab_size"])


_get = conv.get_model_class


def get_model_class(*a, **k):
    cls = _get(*a, **k)
    for c in cls.__mro__:
        if "set_vocab" in c.__dict__:
            c.set_vocab = vocab_size_only
    return cls


conv.get_model_class = get_model_class
pairs = sys.argv[3:]
for i in range(0, len(pairs), 2):
    sys.argv = ["convert_hf_to_gguf.py", pairs[i], "--outtype", "f32", "--outfile", pairs[i + 1]]
    conv.main()
