"""Token vectors of the injection data after the encoder's first layers, for fine-tuning the
layers above them (`scripts/finetune_encoder.py`).

`python3 injection_states.py` runs the filter's `states` example (the same Rust code that
scores at run time) over the texts that fine-tuning and its leave-one-source-out evaluation read:
every held-out text, every development attack, the development benign texts that choose the
operating point (bucket 80 and up) and a seeded 30% of the other development benign texts. The
vectors (bfloat16, the output of the first `LAYERS` layers) go to
`target/injection-data/states/<key>/` in chunks of 1,000 texts, each written by two
single-threaded processes; a finished chunk is kept, so an interrupted run resumes.

`load()` returns, for each text's sha256, its windows as bfloat16 bit arrays `[tokens, 384]`
(memory-mapped); `widen()` makes float32 of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np

from injection_common import DATA, ROOT, bucket, load as load_records

ENCODER = ROOT / "target" / "encoder" / "all-MiniLM-L6-v2"
STATES_BIN = ROOT / "target" / "release" / "examples" / "states"
LAYERS = 5
DIM = 384
CHUNK = 1000
TRAIN_BENIGN_SHARE = 30


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def selected(records: list[dict]) -> list[dict]:
    """The texts fine-tuning and its evaluation read, in data order."""

    def wanted(r: dict) -> bool:
        if r["split"] != "dev" or r["label"] == "attack" or bucket(r["id"]) >= 80:
            return True
        sample = int.from_bytes(hashlib.sha256(("sample:" + r["id"]).encode()).digest()[:2], "big") % 100
        return sample < TRAIN_BENIGN_SHARE

    return [r for r in records if wanted(r)]


def directory(texts: list[str]) -> pathlib.Path:
    digest = hashlib.sha256()
    digest.update((ENCODER / "model.safetensors").read_bytes())
    digest.update(f"layers={LAYERS}".encode())
    for t in texts:
        digest.update(text_key(t).encode())
    return DATA / "states" / digest.hexdigest()[:16]


def _feed(proc: subprocess.Popen, payload: bytes) -> None:
    proc.stdin.write(payload)
    proc.stdin.close()


def _dump_chunk(texts: list[str], prefix: pathlib.Path) -> None:
    env = {**os.environ, "RAYON_NUM_THREADS": "1"}
    procs = []
    for k in range(2):
        part = texts[k::2]
        out = open(f"{prefix}.{k}.tmp", "wb")
        proc = subprocess.Popen(
            [str(STATES_BIN), str(ENCODER), str(LAYERS), f"{prefix}.{k}.bf16"], stdin=subprocess.PIPE, stdout=out, env=env
        )
        payload = "".join(json.dumps(t) + "\n" for t in part).encode()
        threading.Thread(target=_feed, args=(proc, payload), daemon=True).start()
        procs.append((proc, len(part), k))
    for proc, expected, k in procs:
        if proc.wait() != 0:
            raise SystemExit(f"states failed on {prefix}.{k}")
        lines = pathlib.Path(f"{prefix}.{k}.tmp").read_text().splitlines()
        tokens = sum(sum(json.loads(line)["tokens"]) for line in lines)
        size = pathlib.Path(f"{prefix}.{k}.bf16").stat().st_size
        if len(lines) != expected or size != tokens * DIM * 2:
            raise SystemExit(f"states wrote {len(lines)} lines for {expected} texts, {size} bytes for {tokens} tokens")
    for k in range(2):
        os.replace(f"{prefix}.{k}.tmp", f"{prefix}.{k}.jsonl")


def dump(texts: list[str]) -> pathlib.Path:
    out = directory(texts)
    out.mkdir(parents=True, exist_ok=True)
    for n in range(0, len(texts), CHUNK):
        prefix = out / f"chunk{n // CHUNK:04d}"
        if all(pathlib.Path(f"{prefix}.{k}.jsonl").exists() for k in range(2)):
            continue
        print(f"states: texts {n}..{min(n + CHUNK, len(texts))} of {len(texts)}", file=sys.stderr, flush=True)
        _dump_chunk(texts[n : n + CHUNK], prefix)
    return out


def widen(bits: np.ndarray) -> np.ndarray:
    """float32 of bfloat16 bits."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def load(texts: list[str]) -> dict[str, list[np.ndarray]]:
    """Each dumped text's windows as bfloat16 bits, `[tokens, DIM]`, memory-mapped."""
    out = directory(texts)
    result: dict[str, list[np.ndarray]] = {}
    for n in range(0, len(texts), CHUNK):
        chunk = texts[n : n + CHUNK]
        for k in range(2):
            prefix = out / f"chunk{n // CHUNK:04d}.{k}"
            lines = pathlib.Path(f"{prefix}.jsonl").read_text().splitlines()
            wide = np.memmap(f"{prefix}.bf16", dtype="<u2", mode="r").reshape(-1, DIM)
            at = 0
            for text, line in zip(chunk[k::2], lines):
                windows = []
                for t in json.loads(line)["tokens"]:
                    windows.append(wide[at : at + t])
                    at += t
                result[text_key(text)] = windows
    return result


def main() -> None:
    records = load_records(DATA / "dev.jsonl") + load_records(DATA / "heldout.jsonl")
    texts = [r["text"] for r in selected(records)]
    print(f"states: {len(texts)} of {len(records)} texts", file=sys.stderr)
    print(dump(texts))


if __name__ == "__main__":
    main()
