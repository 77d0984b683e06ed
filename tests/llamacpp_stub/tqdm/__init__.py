"""Stub for tests/llamacpp_convert.py: a progress bar that shows nothing."""


class tqdm:
    def __init__(self, *a, **k):
        pass

    def update(self, *a, **k):
        pass

    def close(self):
        pass

    def set_description(self, *a, **k):
        pass

    def write(self, *a, **k):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
