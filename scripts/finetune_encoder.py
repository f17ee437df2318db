"""Fine-tuning the transformer layer's last encoder layer for injections, measured leaving one
source out.

The first five layers of all-MiniLM-L6-v2 stay frozen: their output for every window is computed
once by the filter's Rust code (`injection_states.py`). The sixth layer gets low-rank adapters
(LoRA, rank `RANK`, on its query, key, value, attention output, intermediate and output
matrices) and trainable layer norms; the window's masked mean, scaled to unit length, goes to
the same head the frozen layer has (128 ReLU units and a logistic output). A benign window is a
negative example; an attack text is a bag of windows whose highest logit is its score, so a
document with one injected paragraph does not teach that its other windows are attacks.

Training: PyTorch on the CPU (Debian's `python3-torch` 1.13 with OpenBLAS), seeded, AdamW,
`EPOCHS` epochs over the development texts below bucket 80 (benign texts: the seeded 30% the
states were dumped for); the operating point is chosen on the development benign texts from
bucket 80 as for the frozen head.

`python3 finetune_encoder.py --loso SOURCE...` fits one model per held-out source (as
`eval_generalisation.py` defines sources; all of them without names) and writes each fold's
probabilities for the evaluation and tuning texts to
`target/injection-data/finetune-folds/<key>/<source>.npz`, beside the frozen head's, and prints
recall at 1% and 5% false positives for both.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import pathlib
import random
import sys
import time

import numpy as np
import torch
from torch import nn

from injection_common import DATA, ROOT, bucket, load as load_records, source_of, training_record
from injection_states import ENCODER, LAYERS, directory as states_directory, load as load_states, selected, text_key, widen

RANK = 8
ALPHA = 16.0
EPOCHS = 2
BATCH_BAGS = 32
MAX_BAG = 12
LR = 5e-4
HEAD_LR = 2e-3
HIDDEN = 128
SEED = 0
HEAD_TARGET_BENIGN_RATE = 0.0025  # as eval_generalisation.py
HEADS = 12
HEAD_FILE = ROOT / "crates" / "agentiam-filter" / "src" / "encoder_head.json"
PROBE_TOKENS = 8
EPS = 1e-12


def safetensors(path: pathlib.Path, prefix: str) -> dict[str, np.ndarray]:
    """The float32 tensors of a safetensors file whose names start with `prefix`."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    out = {}
    for name, meta in header.items():
        if name.startswith(prefix) and meta.get("dtype") == "F32":
            start, end = meta["data_offsets"]
            out[name[len(prefix) :]] = np.frombuffer(raw[8 + size + start : 8 + size + end], dtype="<f4").reshape(meta["shape"]).copy()
    return out


class LoraLinear(nn.Module):
    def __init__(self, weight: np.ndarray, bias: np.ndarray, rank: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.from_numpy(weight))
        self.register_buffer("bias", torch.from_numpy(bias))
        self.rank = rank
        if rank:
            self.down = nn.Parameter(torch.empty(rank, weight.shape[1]))
            nn.init.kaiming_uniform_(self.down, a=math.sqrt(5))
            self.up = nn.Parameter(torch.zeros(weight.shape[0], rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.linear(x, self.weight, self.bias)
        if self.rank:
            y = y + (x @ self.down.t()) @ self.up.t() * (ALPHA / self.rank)
        return y

    def merged(self) -> np.ndarray:
        w = self.weight
        if self.rank:
            w = w + self.up @ self.down * (ALPHA / self.rank)
        return w.detach().numpy()


def layer_norm(w: dict, name: str, train: bool) -> nn.LayerNorm:
    norm = nn.LayerNorm(w[f"{name}.weight"].shape[0], eps=EPS)
    with torch.no_grad():
        norm.weight.copy_(torch.from_numpy(w[f"{name}.weight"]))
        norm.bias.copy_(torch.from_numpy(w[f"{name}.bias"]))
    norm.requires_grad_(train)
    return norm


class TopLayer(nn.Module):
    """BERT's last layer as the filter's Rust code runs it, with adapters, then pool and head."""

    def __init__(self, w: dict[str, np.ndarray], rank: int) -> None:
        super().__init__()
        lin = lambda n: LoraLinear(w[f"{n}.weight"], w[f"{n}.bias"], rank)  # noqa: E731
        self.query, self.key, self.value = lin("attention.self.query"), lin("attention.self.key"), lin("attention.self.value")
        self.attention_out = lin("attention.output.dense")
        self.attention_norm = layer_norm(w, "attention.output.LayerNorm", rank > 0)
        self.intermediate = lin("intermediate.dense")
        self.output = lin("output.dense")
        self.output_norm = layer_norm(w, "output.LayerNorm", rank > 0)
        generator = torch.Generator().manual_seed(SEED)
        self.hidden = nn.Linear(384, HIDDEN)
        self.out = nn.Linear(HIDDEN, 1)
        for p in (self.hidden.weight, self.out.weight):
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=generator) * math.sqrt(2.0 / p.shape[1]))
        nn.init.zeros_(self.hidden.bias)
        nn.init.zeros_(self.out.bias)

    def embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, seq, hidden = x.shape
        head = hidden // HEADS
        split = lambda t: t.reshape(batch, seq, HEADS, head).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        bias = ((mask - 1.0) * 1e4)[:, None, None, :]
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head) + bias, dim=-1)
        context = (weights @ v).transpose(1, 2).reshape(batch, seq, hidden)
        x = self.attention_norm(self.attention_out(context) + x)
        inner = nn.functional.gelu(self.intermediate(x))
        x = self.output_norm(self.output(inner) + x)
        mean = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
        return mean / mean.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def linears(self) -> list[LoraLinear]:
        return [lin for lin in (self.query, self.key, self.value, self.attention_out, self.intermediate, self.output) if lin.rank]

    def head(self, e: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(e)))[:, 0]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x, mask))


def padded(windows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(w) for w in windows)
    x = np.zeros((len(windows), longest, 384), dtype=np.float32)
    mask = np.zeros((len(windows), longest), dtype=np.float32)
    for i, w in enumerate(windows):
        x[i, : len(w)] = widen(w)
        mask[i, : len(w)] = 1.0
    return torch.from_numpy(x), torch.from_numpy(mask)


def run(model: TopLayer, windows: list[np.ndarray], embedded: bool = False) -> torch.Tensor:
    """Logits of windows given as token states (through the top layer) or, with `embedded`, as
    the frozen layer's embeddings (the head alone)."""
    if embedded:
        return model.head(torch.from_numpy(np.stack(windows)))
    return model(*padded(windows))


def window_logits(model: TopLayer, windows: list[np.ndarray], embedded: bool = False, batch: int = 64) -> np.ndarray:
    """Logit of each window, in order; windows are run sorted by length so padding stays small."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    out = np.zeros(len(windows), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        for n in range(0, len(order), batch if not embedded else 4096):
            idx = order[n : n + batch if not embedded else n + 4096]
            out[idx] = run(model, [windows[i] for i in idx], embedded).numpy()
    return out


def frozen_embeddings(model: TopLayer, states: dict[str, list[np.ndarray]], cache: pathlib.Path) -> dict[str, list[np.ndarray]]:
    """Every dumped window's embedding through the base (frozen) last layer, computed once."""
    keys = sorted(states)
    flat = [w for k in keys for w in states[k]]
    if cache.exists():
        matrix = np.load(cache)
    else:
        print(f"embedding {len(flat)} windows through the frozen last layer", file=sys.stderr, flush=True)
        model.eval()
        order = sorted(range(len(flat)), key=lambda i: len(flat[i]))
        matrix = np.zeros((len(flat), 384), dtype=np.float32)
        with torch.no_grad():
            for n in range(0, len(order), 64):
                idx = order[n : n + 64]
                matrix[idx] = model.embed(*padded([flat[i] for i in idx])).numpy()
        np.save(cache, matrix)
    out, at = {}, 0
    for k in keys:
        out[k] = list(matrix[at : at + len(states[k])])
        at += len(states[k])
    return out


def text_logits(model: TopLayer, bags: list[list[np.ndarray]], embedded: bool = False) -> np.ndarray:
    flat = [w for bag in bags for w in bag]
    logits = window_logits(model, flat, embedded)
    ends = np.cumsum([len(b) for b in bags])
    return np.array([logits[e - len(b) : e].max() for b, e in zip(bags, ends)])


def train(model: TopLayer, bags: list[list[np.ndarray]], labels: list[int], log: str, embedded: bool = False) -> None:
    """AdamW over bags: a bag's logit is its highest window's; classes balanced by weight."""
    rng = random.Random(SEED)
    torch.manual_seed(SEED)
    adapters = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(("hidden", "out"))]
    head = [*model.hidden.parameters(), *model.out.parameters()]
    groups = [{"params": head, "lr": HEAD_LR}]
    if adapters:
        groups.append({"params": adapters, "lr": LR})
    optimiser = torch.optim.AdamW(groups, weight_decay=0.01)
    positive = sum(labels) / len(labels)
    weight = {1: 0.5 / positive, 0: 0.5 / (1 - positive)}
    steps = EPOCHS * math.ceil(len(bags) / BATCH_BAGS)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / steps))
    # Bags are batched with others of similar length, in a seeded shuffle of those batches.
    by_length = sorted(range(len(bags)), key=lambda i: (max(len(w) for w in bags[i]), rng.random()))
    batches = [by_length[n : n + BATCH_BAGS] for n in range(0, len(by_length), BATCH_BAGS)]
    started = time.time()
    for epoch in range(EPOCHS):
        rng.shuffle(batches)
        model.train()
        total = 0.0
        for idx in batches:
            windows, owner = [], []
            for j, i in enumerate(idx):
                bag = bags[i]
                if len(bag) > MAX_BAG:
                    bag = rng.sample(bag, MAX_BAG)
                windows.extend(bag)
                owner.extend([j] * len(bag))
            logits = run(model, windows, embedded)
            owner_t = torch.tensor(owner)
            bag_logits = torch.full((len(idx),), -1e9).scatter_reduce(0, owner_t, logits, reduce="amax")
            y = torch.tensor([float(labels[i]) for i in idx])
            w = torch.tensor([weight[labels[i]] for i in idx])
            loss = (nn.functional.binary_cross_entropy_with_logits(bag_logits, y, reduction="none") * w).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss) * len(idx)
        print(f"{log}: epoch {epoch + 1} loss {total / len(bags):.4f} ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)


def quantised(matrix: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and one float32 scale per row, as the filter stores trained matrices."""
    m = matrix.detach().numpy().astype(np.float32)
    scales = (np.abs(m).max(axis=1) / 127.0).astype(np.float32)
    scales[scales == 0] = 1.0
    return np.clip(np.round(m / scales[:, None]), -127, 127).astype(np.int8), scales


def quantise_(model: TopLayer) -> None:
    """Replaces the trained matrices by their int8 values, so what is measured is what ships."""
    with torch.no_grad():
        for p in [*(lin.down for lin in model.linears()), *(lin.up for lin in model.linears()), model.hidden.weight]:
            q, scales = quantised(p)
            p.copy_(torch.from_numpy(q.astype(np.float32) * scales[:, None]))


def floats(values) -> list[float]:
    """float32 values as the shortest decimals that read back as the same float32."""
    return [float(f"{float(v):.9g}") for v in np.asarray(values, dtype=np.float32).ravel()]


def encoded(matrix: torch.Tensor) -> dict:
    q, scales = quantised(matrix)
    return {
        "rows": int(q.shape[0]),
        "cols": int(q.shape[1]),
        "int8": base64.b64encode(q.tobytes()).decode(),
        "scales": floats(scales),
    }


def probe_states() -> torch.Tensor:
    """The adapter's probe input, as the filter computes it: sin(1), sin(2), ... in rows of 384."""
    values = np.sin(np.arange(1, PROBE_TOKENS * 384 + 1, dtype=np.float64)).astype(np.float32)
    return torch.from_numpy(values.reshape(1, PROBE_TOKENS, 384))


def head_probe() -> torch.Tensor:
    """The head's probe input: sin(1), ... sin(384), unit length (as encoder_heads.probe)."""
    v = np.sin(np.arange(1, 385, dtype=np.float64)).astype(np.float32)
    return torch.from_numpy((v / np.linalg.norm(v))[None, :])


def record(model: TopLayer, shift: float) -> dict:
    """The head and the adapter as `encoder_head.json` stores them, the operating point folded
    into the output bias, with both probes."""
    q, scales = quantised(model.hidden.weight)
    with torch.no_grad():
        head_logit = float(model.head(head_probe())[0]) + shift
        adapter_logit = float(model(probe_states(), torch.ones(1, PROBE_TOKENS))[0]) + shift
    names = {
        "attention.self.query": model.query,
        "attention.self.key": model.key,
        "attention.self.value": model.value,
        "attention.output.dense": model.attention_out,
        "intermediate.dense": model.intermediate,
        "output.dense": model.output,
    }
    norm = lambda n: {"weight": floats(n.weight.detach().numpy()), "bias": floats(n.bias.detach().numpy())}  # noqa: E731
    return {
        "weights": floats(model.out.weight.detach().numpy()[0]),
        "bias": floats([float(model.out.bias.detach().numpy()[0]) + shift])[0],
        "hidden": {
            "units": HIDDEN,
            "weights_int8": base64.b64encode(q.tobytes()).decode(),
            "scales": floats(scales),
            "biases": floats(model.hidden.bias.detach().numpy()),
        },
        "probe": {"vector": "sin(1), sin(2), ... sin(dims), scaled to unit length", "logit": round(head_logit, 5)},
        "adapter": {
            "layer": LAYERS,
            "rank": RANK,
            "alpha": ALPHA,
            "matrices": {n: {"down": encoded(lin.down), "up": encoded(lin.up)} for n, lin in names.items()},
            "norms": {"attention.output.LayerNorm": norm(model.attention_norm), "output.LayerNorm": norm(model.output_norm)},
            "probe": {
                "states": f"sin(1), sin(2), ... in {PROBE_TOKENS} rows of 384, all tokens attended",
                "logit": round(adapter_logit, 5),
            },
        },
    }


def operating_bias(benign_logits: np.ndarray, rate: float) -> float:
    """The shift that puts at most `rate` of the benign tuning texts at p >= 0.5."""
    ranked = np.sort(benign_logits)[::-1]
    k = int(rate * len(ranked))
    return -float(ranked[k]) - 1e-6 if k < len(ranked) else 0.0


def recall_at(benign: np.ndarray, attacks: np.ndarray, fpr: float) -> float:
    ranked = np.sort(benign)[::-1]
    k = int(fpr * len(ranked))
    cut = ranked[k] if k < len(ranked) else -np.inf
    return float((attacks > cut).mean())


def training_bags(records: list[dict], indices: list[int], states: dict) -> tuple[list, list[int]]:
    """Benign texts give one example per window; attack texts one bag each."""
    bags, labels = [], []
    for i in indices:
        windows = states[text_key(records[i]["text"])]
        if records[i]["label"] == "attack":
            bags.append(windows)
            labels.append(1)
        else:
            bags.extend([w] for w in windows)
            labels.extend([0] * len(windows))
    return bags, labels


def export(records: list[dict], states: dict, weights: dict) -> None:
    """Trains on every development text below bucket 80 and writes `encoder_head.json`."""
    fit = [
        i
        for i, r in enumerate(records)
        if r["split"] == "dev" and bucket(r["id"]) < 80 and not r.get("pair") and text_key(r["text"]) in states
    ]
    tune = [i for i, r in enumerate(records) if r["split"] == "dev" and bucket(r["id"]) >= 80]
    bags, labels = training_bags(records, fit, states)
    torch.manual_seed(SEED)
    model = TopLayer(weights, RANK)
    train(model, bags, labels, "export")
    quantise_(model)
    logits = text_logits(model, [states[text_key(records[i]["text"])] for i in tune])
    benign = np.array([v for v, i in zip(logits, tune) if records[i]["label"] == "benign"])
    attack = np.array([v for v, i in zip(logits, tune) if records[i]["label"] == "attack"])
    bias = operating_bias(benign, HEAD_TARGET_BENIGN_RATE)
    written = {
        **record(model, bias),
        "made_by": "scripts/finetune-encoder --export",
        "encoder": f"all-MiniLM-L6-v2 (data/injection/ENCODER.md), layers 1-{LAYERS} frozen, layer {LAYERS + 1} with rank-{RANK} adapters; mean-pooled unit-length 126-token windows",
        "trainer": (
            f"torch {torch.__version__} (Debian python3-torch, CPU), numpy {np.__version__}; AdamW, {EPOCHS} epochs, "
            f"{BATCH_BAGS} bags a batch, lr {LR} (adapters) and {HEAD_LR} (head), seed {SEED}; LoRA rank {RANK}, alpha {ALPHA}; "
            f"head {HIDDEN} ReLU units; attack texts as bags of windows (highest logit), benign windows one by one; int8 per row"
        ),
        **training_record(ENCODER, len(fit), len(tune), HEAD_TARGET_BENIGN_RATE, attack, benign, bias),
    }
    HEAD_FILE.write_text(json.dumps(written) + "\n")
    print(json.dumps(written["operating_point"], indent=2))


def main() -> None:
    torch.set_num_threads(2)
    records = load_records(DATA / "dev.jsonl") + load_records(DATA / "heldout.jsonl")
    dumped = selected(records)
    states = load_states([r["text"] for r in dumped])
    state_dir = states_directory([r["text"] for r in dumped])
    weights = safetensors(ENCODER / "model.safetensors", f"encoder.layer.{LAYERS}.")
    if not weights:
        raise SystemExit("the encoder has no layer above the dumped states")
    is_dev = [r["split"] == "dev" for r in records]
    sources: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if r["label"] == "attack":
            sources.setdefault(source_of(r), []).append(i)
    if "--export" in sys.argv:
        export(records, states, weights)
        return
    wanted = [a for a in sys.argv[1:] if not a.startswith("--")] or sorted(sources)
    bags = lambda idx: [states[text_key(records[i]["text"])] for i in idx]  # noqa: E731
    benign_eval = [i for i, r in enumerate(records) if r["label"] == "benign" and not is_dev[i]]
    key = hashlib.sha256(json.dumps([RANK, ALPHA, EPOCHS, BATCH_BAGS, MAX_BAG, LR, HEAD_LR, HIDDEN, SEED]).encode())
    key.update((DATA / "dev.jsonl").read_bytes())
    out_dir = DATA / "finetune-folds" / key.hexdigest()[:16]
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"writing folds to {out_dir}", file=sys.stderr)
    frozen = frozen_embeddings(TopLayer(weights, 0), states, state_dir / "frozen-embeddings.npy")
    for source in wanted:
        held = set(sources[source])
        train_idx = [
            i
            for i, r in enumerate(records)
            if is_dev[i] and bucket(r["id"]) < 80 and not r.get("pair") and i not in held and text_key(r["text"]) in states
        ]
        tune_all = [i for i, r in enumerate(records) if is_dev[i] and bucket(r["id"]) >= 80 and i not in held]
        eval_idx = benign_eval + sources[source]
        saved = out_dir / f"{source.replace('/', '_')}.npz"
        result = dict(np.load(saved)) if saved.exists() else {}
        for name, rank in (("frozen", 0), ("finetuned", RANK)):
            # The frozen layer's embeddings are the same in every fold: only its head is trained.
            embedded = rank == 0
            if name in result:
                continue
            of = (lambda idx: [frozen[text_key(records[i]["text"])] for i in idx]) if embedded else bags  # noqa: E731
            torch.manual_seed(SEED)
            model = TopLayer(weights, rank)
            fold_bags, fold_labels = training_bags(records, train_idx, frozen if embedded else states)
            train(model, fold_bags, fold_labels, f"{source} {name}", embedded)
            quantise_(model)
            tune_logits = text_logits(model, of(tune_all), embedded)
            benign_tune = np.array([v for v, i in zip(tune_logits, tune_all) if records[i]["label"] == "benign"])
            bias = operating_bias(benign_tune, HEAD_TARGET_BENIGN_RATE)
            eval_logits = text_logits(model, of(eval_idx), embedded) + bias
            result[name] = 1 / (1 + np.exp(-eval_logits))
            result[f"{name}_tune"] = 1 / (1 + np.exp(-(tune_logits + bias)))
        np.savez(saved, **result)
        nb = len(benign_eval)
        line = [f"{source}: attacks={len(held)}"]
        for name in ("frozen", "finetuned"):
            q = result[name]
            line.append(f"{name} @1% {recall_at(q[:nb], q[nb:], 0.01):.1%} @5% {recall_at(q[:nb], q[nb:], 0.05):.1%}")
        print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
