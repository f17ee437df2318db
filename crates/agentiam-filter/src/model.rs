//! The learned layer: a logistic-regression model over hashed word and character n-grams.
//!
//! Features come from the normalised words view (lower case, confusables folded, one space
//! between words): each word's unigram, the bigram it ends, and the character trigrams of the
//! word padded with spaces, each hashed into 2^18 buckets. A text is scored in windows of
//! [`WINDOW_WORDS`] words (stride half a window), so an injection inside a long document is not
//! diluted by the document around it; the text's probability is the highest window's.
//! Windows where fewer than half the words are ASCII are not scored (the training text is
//! English; other scripts are left to the rules).
//! Within a window the score is `bias + scale * sum(weights of its features) / sqrt(count)`.
//!
//! The weights (`model.bin`, 256 KiB of `i8` with a header) are trained by
//! `scripts/train-injection-model` from the public data listed in `data/injection/PROVENANCE.md`;
//! the same feature code serves training (`agentiam scan --features`) and scoring, so the two
//! cannot drift apart.

/// Words in one scoring window.
pub(crate) const WINDOW_WORDS: usize = 96;
/// log2 of the number of hash buckets.
pub(crate) const BITS: u32 = 18;
const MASK: u32 = (1 << BITS) - 1;
const MAGIC: &[u8; 4] = b"AIMW";
const HEADER: usize = 4 + 4 + 4 + 4;

static WEIGHTS: &[u8] = include_bytes!("model.bin");

/// The embedded model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Model {
    bias: f32,
    scale: f32,
    weights: &'static [u8],
}

fn f32_at(bytes: &[u8], at: usize) -> Option<f32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(f32::from_le_bytes(b))
}

impl Model {
    /// The embedded weights, or `None` if the file is not a model of this layout.
    pub(crate) fn embedded() -> Option<Self> {
        Self::parse(WEIGHTS)
    }

    fn parse(bytes: &'static [u8]) -> Option<Self> {
        if bytes.get(..4)? != MAGIC {
            return None;
        }
        let bits = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
        let weights = bytes.get(HEADER..)?;
        if bits != BITS || weights.len() != 1 << BITS {
            return None;
        }
        Some(Self {
            bias: f32_at(bytes, 8)?,
            scale: f32_at(bytes, 12)?,
            weights,
        })
    }

    /// The weight of feature bucket `index`.
    pub(crate) fn weight(&self, index: u32) -> f32 {
        self.weights
            .get(index as usize)
            .map_or(0.0, |&b| f32::from(i8::from_le_bytes([b])))
    }

    /// The highest window probability of the words view, and that window's word range.
    pub(crate) fn score(&self, words_view: &str) -> (f64, usize, usize) {
        let mut sums: Vec<(f32, u32)> = Vec::new();
        let ascii = features(words_view, |word, index| {
            if sums.len() <= word {
                sums.resize(word + 1, (0.0, 0));
            }
            if let Some(slot) = sums.get_mut(word) {
                slot.0 += self.weight(index);
                slot.1 += 1;
            }
        });
        self.best_window(&sums, |start, end| scored(&ascii, start, end))
    }

    /// The highest window probability over per-word sums (weight sum, feature count), and
    /// that window's word range; `scored(start, end)` says which windows count.
    pub(crate) fn best_window(
        &self,
        sums: &[(f32, u32)],
        scored: impl Fn(usize, usize) -> bool,
    ) -> (f64, usize, usize) {
        let mut best = (f64::NEG_INFINITY, 0, 0);
        for (start, end) in windows(sums.len()) {
            if !scored(start, end) {
                continue;
            }
            let (sum, count) = sums
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .fold((0.0f32, 0u32), |(s, n), (w, c)| (s + w, n + c));
            if count == 0 {
                continue;
            }
            #[allow(clippy::cast_precision_loss, reason = "feature counts are small")]
            let z = self.bias + self.scale * sum / (count as f32).sqrt();
            if f64::from(z) > best.0 {
                best = (f64::from(z), start, end);
            }
        }
        if best.0 == f64::NEG_INFINITY {
            return (0.0, 0, 0);
        }
        (1.0 / (1.0 + (-best.0).exp()), best.1, best.2)
    }
}

/// Window ranges over `n` words: `WINDOW_WORDS` long, stride half of that, the last one flush
/// with the end; one window when the text is shorter.
pub(crate) fn windows(n: usize) -> Vec<(usize, usize)> {
    half_stride_windows(n, WINDOW_WORDS)
}

/// Window ranges over `n` units: `size` long, stride half of that, the last one flush with the
/// end; one window when there are no more than `size` (the n-gram and transformer layers both
/// window this way).
pub(crate) fn half_stride_windows(n: usize, size: usize) -> Vec<(usize, usize)> {
    if n <= size {
        return vec![(0, n)];
    }
    let stride = (size / 2).max(1);
    let mut out: Vec<(usize, usize)> = (0..)
        .map(|i| i * stride)
        .take_while(|s| s + size < n)
        .map(|s| (s, s + size))
        .collect();
    out.push((n - size, n));
    out
}

/// FNV-1a's starting state.
pub(crate) const FNV_START: u32 = 0x811c_9dc5;

/// One byte into an FNV-1a state.
#[inline]
pub(crate) fn fnv(h: u32, b: u8) -> u32 {
    (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
}

/// An FNV-1a state through a murmur3 finaliser, masked to the bucket count.
#[inline]
pub(crate) fn finish(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h & MASK
}

/// FNV-1a, then a murmur3 finaliser, masked to the bucket count.
pub(crate) fn bucket(kind: u8, parts: &[&[u8]]) -> u32 {
    let mut h = fnv(FNV_START, kind);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h = fnv(h, b' ');
        }
        h = part.iter().fold(h, |h, &b| fnv(h, b));
    }
    finish(h)
}

/// Calls `emit(word_index, bucket)` for every feature of the words view, and returns whether
/// each word is ASCII.
pub(crate) fn features(words_view: &str, mut emit: impl FnMut(usize, u32)) -> Vec<bool> {
    let mut ascii = Vec::new();
    let mut previous: Option<&[u8]> = None;
    for (i, word) in words_view.split(' ').filter(|w| !w.is_empty()).enumerate() {
        let w = word.as_bytes();
        ascii.push(word.is_ascii());
        emit(i, bucket(b'w', &[w]));
        if let Some(p) = previous {
            emit(i, bucket(b'b', &[p, w]));
        }
        // Trigrams of " word " (bytes; words are short, so this stays cheap).
        let len = w.len();
        for start in 0..len {
            let gram: [u8; 3] = [
                if start == 0 {
                    b' '
                } else {
                    w.get(start - 1).copied().unwrap_or(b' ')
                },
                w.get(start).copied().unwrap_or(b' '),
                w.get(start + 1).copied().unwrap_or(b' '),
            ];
            emit(i, bucket(b'c', &[&gram]));
        }
        previous = Some(w);
    }
    ascii
}

/// The model learned from English text; a window where fewer than half the words are ASCII
/// (Thai, Chinese, Cyrillic, ...) is not scored, rather than scored on features it never saw.
fn scored(ascii: &[bool], start: usize, end: usize) -> bool {
    let words = ascii.get(start..end).unwrap_or_default();
    2 * words.iter().filter(|a| **a).count() >= words.len() && !words.is_empty()
}

/// Feature buckets per window, for training.
pub(crate) fn window_features(words_view: &str) -> Vec<Vec<u32>> {
    let mut per_word: Vec<Vec<u32>> = Vec::new();
    let ascii = features(words_view, |word, index| {
        if per_word.len() <= word {
            per_word.resize_with(word + 1, Vec::new);
        }
        if let Some(slot) = per_word.get_mut(word) {
            slot.push(index);
        }
    });
    windows(per_word.len())
        .into_iter()
        .filter(|&(s, e)| scored(&ascii, s, e))
        .map(|(s, e)| {
            per_word
                .get(s..e)
                .unwrap_or_default()
                .iter()
                .flatten()
                .copied()
                .collect()
        })
        .filter(|w: &Vec<u32>| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    #[test]
    fn windows_cover_every_word() {
        assert_eq!(windows(0), vec![(0, 0)]);
        assert_eq!(windows(10), vec![(0, 10)]);
        let w = windows(250);
        assert_eq!(w.first(), Some(&(0, WINDOW_WORDS)));
        assert_eq!(w.last(), Some(&(250 - WINDOW_WORDS, 250)));
        assert!(w.windows(2).all(|p| p[1].0 <= p[0].1));
    }

    #[test]
    fn features_are_stable() {
        // The training script relies on these buckets; a change here retrains the model.
        let mut got = Vec::new();
        let ascii = features(" ignore previous ", |i, b| got.push((i, b)));
        assert_eq!(ascii, vec![true, true]);
        assert_eq!(got.len(), 1 + 6 + 1 + 1 + 8);
        assert!(got.iter().all(|&(_, b)| b <= MASK));
        assert_eq!(window_features(" a b ").len(), 1);
        // Mostly non-ASCII windows are neither trained on nor scored.
        assert!(window_features(" ภาษาไทย 我们明天 a ").is_empty());
        let model = Model::embedded().unwrap();
        assert_eq!(model.score(" ภาษาไทย 我们明天 a ").0, 0.0);
    }

    #[test]
    fn the_embedded_model_loads() {
        assert!(Model::embedded().is_some());
    }
}
