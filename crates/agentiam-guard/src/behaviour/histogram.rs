//! Fixed-size log-scale histograms: how the baselines keep a distribution (call rates, bytes
//! read, argument values) in constant memory and read its quantiles in constant time.

use serde::{Deserialize, Serialize};

/// A fixed-size histogram over log-scale buckets (8 per octave, 2^-16 ..= 2^48), with its
/// quantiles cached so reading them costs nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "SparseHistogram", into = "SparseHistogram")]
pub struct LogHistogram {
    counts: Vec<u32>,
    n: u64,
    /// Values that were above every value before them (a steadily growing identifier or
    /// counter keeps setting records; draws from one distribution set about ln(n)).
    records: u64,
    p50: f64,
    p99: f64,
    max: f64,
}

const BUCKETS: usize = 512;
const PER_OCTAVE: f64 = 8.0;
const ZERO_BUCKET_OFFSET: f64 = 128.0;

#[derive(Serialize, Deserialize)]
struct SparseHistogram {
    /// `[bucket, count]` for non-empty buckets.
    buckets: Vec<(usize, u32)>,
    /// New maxima seen.
    #[serde(default)]
    records: u64,
}

impl TryFrom<SparseHistogram> for LogHistogram {
    type Error = String;
    fn try_from(s: SparseHistogram) -> Result<Self, String> {
        let mut h = Self::default();
        for (i, c) in s.buckets {
            let slot = h
                .counts
                .get_mut(i)
                .ok_or_else(|| format!("histogram bucket {i} out of range"))?;
            *slot = slot.saturating_add(c);
            h.n += u64::from(c);
        }
        h.records = s.records;
        h.refresh();
        Ok(h)
    }
}

impl From<LogHistogram> for SparseHistogram {
    fn from(h: LogHistogram) -> Self {
        Self {
            buckets: h
                .counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i, *c))
                .collect(),
            records: h.records,
        }
    }
}

/// Two histograms are equal when they hold the same counts (cached quantiles aside).
impl PartialEq for LogHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n && self.counts == other.counts
    }
}

impl Default for LogHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            n: 0,
            records: 0,
            p50: 0.0,
            p99: 0.0,
            max: 0.0,
        }
    }
}

impl LogHistogram {
    fn bucket(value: f64) -> usize {
        if value.is_nan() || value <= 0.0 {
            return 0;
        }
        let i = (value.log2() * PER_OCTAVE + ZERO_BUCKET_OFFSET).floor();
        if i < 1.0 {
            1
        } else {
            (i as usize).min(BUCKETS - 1)
        }
    }

    fn upper_edge(bucket: usize) -> f64 {
        if bucket == 0 {
            return 0.0;
        }
        ((bucket as f64 + 1.0 - ZERO_BUCKET_OFFSET) / PER_OCTAVE).exp2()
    }

    /// Adds a value (negative values count by magnitude).
    pub fn record(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        let b = Self::bucket(value.abs());
        if let Some(c) = self.counts.get_mut(b) {
            *c = c.saturating_add(1);
        }
        self.n += 1;
        // The maximum is kept exact (to its bucket); quantiles move slowly: recompute them
        // while the histogram is small, then every 64 values.
        let edge = Self::upper_edge(b);
        if edge > self.max {
            self.records += 1;
            self.max = edge;
        }
        if self.n <= 256 || self.n.is_multiple_of(64) {
            self.refresh();
        }
    }

    fn refresh(&mut self) {
        let (mut p50, mut p99, mut max) = (0.0, 0.0, 0.0);
        let (q50, q99) = (self.n.div_ceil(2), (self.n * 99).div_ceil(100));
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let before = seen;
            seen += u64::from(c);
            let edge = Self::upper_edge(i);
            if before < q50 && seen >= q50 {
                p50 = edge;
            }
            if before < q99 && seen >= q99 {
                p99 = edge;
            }
            max = edge;
        }
        (self.p50, self.p99, self.max) = (p50, p99, max);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.n
    }
    /// The median (upper edge of its bucket, so at most 9% above the true value).
    pub fn p50(&self) -> f64 {
        self.p50
    }
    /// The 99th percentile (upper edge of its bucket).
    pub fn p99(&self) -> f64 {
        self.p99
    }
    /// The largest value (upper edge of its bucket).
    pub fn max(&self) -> f64 {
        self.max
    }
    /// Whether the values look like a growing identifier or counter rather than a quantity:
    /// they set new maxima far more often than draws from one distribution would.
    pub fn is_growing(&self) -> bool {
        self.records as f64 > 2.0 * (self.n.max(1) as f64).ln() + 10.0
    }
}
