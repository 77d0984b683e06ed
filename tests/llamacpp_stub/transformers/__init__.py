"""Stub for tests/llamacpp_convert.py: llama.cpp's converter imports AutoConfig at module level;
when it fails, the converter reads config.json itself. Not a transformers replacement."""


class AutoConfig:
    @staticmethod
    def from_pretrained(*a, **k):
        raise RuntimeError("transformers is not installed (stub)")


class AutoTokenizer(AutoConfig):
    pass
