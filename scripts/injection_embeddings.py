"""Window embeddings of the injection data from the filter's transformer layer, cached per text.

`embeddings(path)` runs the filter's `embed` example (the same Rust code that scores at run
time) over the texts of a data file (`dev.jsonl`, `heldout.jsonl`) that the cache does not hold
yet, so the evaluation and the head's training read the same vectors and adding texts to the
data embeds only the new ones.

The cache, `target/injection-data/embeddings/<encoder digest>/`, is append-only: `store.f32`
holds the window vectors and `index.jsonl` one line per text (its sha256 and window count), in
the same order. The vectors of a batch are written before its index lines, so an interrupted run
leaves at most unindexed bytes at the end of the store, which the next run cuts off.
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

from injection_common import DATA, ROOT, load

ENCODER = ROOT / "target" / "encoder" / "all-MiniLM-L6-v2"
EMBED = ROOT / "target" / "release" / "examples" / "embed"
DIM = 384
ROW = DIM * 4


def _feed(proc: subprocess.Popen, payload: bytes) -> None:
    proc.stdin.write(payload)
    proc.stdin.close()


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _embed(texts: list[str], scratch: pathlib.Path) -> list[np.ndarray]:
    """Each text's windows' embeddings, from two single-threaded `embed` processes.

    Two processes use two cores better than one process with two threads (small matrices).
    Texts are dealt to them alternately, so long texts, which cluster by source, are shared
    evenly; the parts are merged back into the input's order.
    """
    parts = [texts[0::2], texts[1::2]]
    procs = []
    env = {**os.environ, "RAYON_NUM_THREADS": "1"}
    for k, part in enumerate(parts):
        payload = "".join(json.dumps(t) + "\n" for t in part).encode()
        lines = pathlib.Path(f"{scratch}.{k}.lines").open("wb")
        proc = subprocess.Popen([str(EMBED), str(ENCODER), f"{scratch}.{k}"], stdin=subprocess.PIPE, stdout=lines, env=env)
        procs.append((proc, payload, len(part)))
    for proc, payload, _ in procs:
        threading.Thread(target=_feed, args=(proc, payload), daemon=True).start()
    per_part: list[list[np.ndarray]] = []
    for k, (proc, _, expected) in enumerate(procs):
        code = proc.wait()
        lines = pathlib.Path(f"{scratch}.{k}.lines").read_text().splitlines()
        if code != 0 or len(lines) != expected:
            raise SystemExit(f"embed failed or returned {len(lines)} lines for {expected} texts")
        sizes = [json.loads(line)["windows"] for line in lines]
        matrix = np.fromfile(f"{scratch}.{k}", dtype="<f4").reshape(-1, DIM)
        if matrix.shape[0] != sum(sizes):
            raise SystemExit(f"embed part {k} wrote {matrix.shape[0]} windows, its lines say {sum(sizes)}")
        offsets = np.cumsum([0, *sizes])
        per_part.append([matrix[offsets[i] : offsets[i + 1]] for i in range(len(sizes))])
        pathlib.Path(f"{scratch}.{k}").unlink()
        pathlib.Path(f"{scratch}.{k}.lines").unlink()
    return [per_part[i % 2][i // 2] for i in range(len(texts))]


class _Store:
    """The append-only cache of one encoder's window embeddings, keyed by text digest."""

    def __init__(self, directory: pathlib.Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.floats = directory / "store.f32"
        self.index = directory / "index.jsonl"
        self.scratch = directory / "batch"
        self.at: dict[str, tuple[int, int]] = {}
        rows = 0
        if self.index.exists():
            for line in self.index.read_text().splitlines():
                entry = json.loads(line)
                self.at.setdefault(entry["h"], (rows, entry["windows"]))
                rows += entry["windows"]
        size = self.floats.stat().st_size if self.floats.exists() else 0
        if size < rows * ROW:
            raise SystemExit(f"{self.floats} holds {size // ROW} windows, its index {rows}: delete {directory}")
        if size > rows * ROW:
            with self.floats.open("r+b") as f:  # vectors of a batch whose index was never written
                f.truncate(rows * ROW)
        self.rows = rows

    def add(self, texts: list[str], batch: int = 2000) -> None:
        missing = list(dict.fromkeys(t for t in texts if _text_key(t) not in self.at))
        for start in range(0, len(missing), batch):
            chunk = missing[start : start + batch]
            vectors = _embed(chunk, self.scratch)
            with self.floats.open("ab") as out:
                for block in vectors:
                    out.write(block.astype("<f4").tobytes())
                out.flush()
                os.fsync(out.fileno())
            with self.index.open("a") as out:
                for text, block in zip(chunk, vectors):
                    out.write(json.dumps({"h": _text_key(text), "windows": int(block.shape[0])}) + "\n")
                    self.at[_text_key(text)] = (self.rows, int(block.shape[0]))
                    self.rows += int(block.shape[0])
            print(f"embedded {start + len(chunk)} of {len(missing)} new texts", file=sys.stderr, flush=True)

    def get(self, texts: list[str]) -> list[np.ndarray]:
        matrix = np.memmap(self.floats, dtype="<f4", mode="r").reshape(-1, DIM)
        out = []
        for text in texts:
            row, windows = self.at[_text_key(text)]
            out.append(np.array(matrix[row : row + windows]))
        return out


def embeddings(path: pathlib.Path) -> list[np.ndarray]:
    """Per record of the data file, its windows' embeddings (`[windows, 384]`, unit length)."""
    texts = [r["text"] for r in load(path)]
    encoder = hashlib.sha256((ENCODER / "model.safetensors").read_bytes()).hexdigest()[:16]
    store = _Store(DATA / "embeddings" / encoder)
    store.add(texts)
    return store.get(texts)


def main() -> None:
    """`python injection_embeddings.py FILE...`: fill the cache for the given data files."""
    for name in sys.argv[1:]:
        embeddings(pathlib.Path(name))


if __name__ == "__main__":
    main()
