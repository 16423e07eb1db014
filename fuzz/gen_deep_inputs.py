#!/usr/bin/env python3
"""Writes the deep-nesting regression inputs (too large for the repository: ~200 KB each) into
OUT/<target>/: the equivalents of ../shared/repro/{jsonl_deep_nesting_segv.jsonl,
length_hist_deep_nesting_segv.json, sse_deep_error_stack_overflow.bin}. Usage: gen_deep_inputs.py OUT"""
import pathlib
import sys

DEPTH = 100_000
out = pathlib.Path(sys.argv[1])
deep = "[" * DEPTH + "]" * DEPTH
files = {
    "jsonl_trace/deep_nesting.jsonl": '{"timestamp": ' + deep + ', "input_length": 1, "output_length": 1}\n',
    "length_histogram/deep_nesting.json": '{"bins": [0, 1], "counts": ' + deep + "}",
    # The sse harness's first byte picks the piece size fed per call: 0x1f -> 32-byte pieces.
    "sse/deep_error.bin": "\x1f" + 'data: {"error": ' + deep + "}\n\n",
}
for name, text in files.items():
    path = out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
