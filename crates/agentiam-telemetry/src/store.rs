//! Where segments live: a directory of files, or memory (benchmarks and crash tests).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Append-only segment storage. Segments are named by the sequence number of their first record.
pub trait SegmentStore: Send + 'static {
    /// First sequence numbers of the existing segments, ascending.
    fn segments(&self) -> io::Result<Vec<u64>>;
    /// The bytes of a segment.
    fn read(&self, first_seq: u64) -> io::Result<Vec<u8>>;
    /// Makes `first_seq` the active segment, creating it if needed and cutting it to `len` bytes.
    fn open_for_append(&mut self, first_seq: u64, len: u64) -> io::Result<()>;
    /// Appends to the active segment.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (fsync).
    fn sync(&mut self) -> io::Result<()>;
    /// Replaces the latest checkpoint, atomically and durably.
    fn write_checkpoint(&mut self, note: &str) -> io::Result<()>;
    /// The latest checkpoint, if any.
    fn read_checkpoint(&self) -> io::Result<Option<String>>;
}

/// Most bytes [`FileStore::with_preallocation`] writes ahead of the records at a time (a larger
/// setting is taken as this): zeros are written, so the step is disk used before any record.
pub const MAX_PREALLOCATION: u64 = 64 << 20;

/// Segments as files `<first seq, 20 digits>.jsonl` in a directory, plus a `checkpoint` file.
///
/// With [`FileStore::with_preallocation`], zeros are written ahead of the active segment's
/// records and records are written over them, so a commit's `fdatasync` has no file-size
/// change or block allocation to persist. The active segment then ends in zero bytes
/// until it is finished (a new segment starts, or the store is dropped), when it is cut back
/// to its records. Readers of a live segment stop at its trailing zeros ([`SegmentStore::read`]
/// here returns a segment without them), and recovery treats a zero byte in the last
/// segment's tail as space a crash left unwritten.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    active: Option<ActiveSegment>,
    preallocate: u64,
}

/// The segment being written: its file, the length of its records, and the file's length.
#[derive(Debug)]
struct ActiveSegment {
    file: std::fs::File,
    len: u64,
    allocated: u64,
}

impl ActiveSegment {
    /// Cuts the file back to its records (after preallocation), durably.
    fn finish(&mut self) -> io::Result<()> {
        if self.allocated > self.len {
            self.file.set_len(self.len)?;
            self.file.sync_data()?;
            self.allocated = self.len;
        }
        Ok(())
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        // Best effort: a segment left preallocated reads the same (its zero tail is skipped).
        if let Some(active) = self.active.as_mut() {
            let _ = active.finish();
        }
    }
}

/// The file name of a segment.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.jsonl")
}

/// A segment file's bytes without the zero bytes that end a preallocated segment not yet cut
/// back (records end in a newline, never a zero byte): what to read from a live segment.
///
/// ```
/// assert_eq!(agentiam_telemetry::without_unwritten_tail(b"{}\n\0\0".to_vec()), b"{}\n");
/// ```
pub fn without_unwritten_tail(mut bytes: Vec<u8>) -> Vec<u8> {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes.truncate(end);
    bytes
}

/// Writes all of `bytes` at byte `at` of `file` (portable: a seek, then a write).
fn write_at(file: &mut std::fs::File, bytes: &[u8], at: u64) -> io::Result<()> {
    use std::io::Seek as _;
    file.seek(io::SeekFrom::Start(at))?;
    file.write_all(bytes)
}

/// Writes zeros over bytes `from..to` of `file`, at most 1 MiB at a time.
fn write_zeros(file: &mut std::fs::File, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; usize::try_from(to.saturating_sub(from).min(1 << 20)).unwrap_or(1 << 20)];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64);
        write_at(file, zeros.get(..n as usize).unwrap_or_default(), at)?;
        at += n;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl FileStore {
    /// Opens (creating) a log directory.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            active: None,
            preallocate: 0,
        })
    }

    /// Extends the active segment `bytes` at a time ahead of its records (0, the default:
    /// append; at most [`MAX_PREALLOCATION`]). Durable commits then rewrite allocated space
    /// instead of growing the file: `cargo bench -p agentiam-telemetry --bench audit_log`
    /// measures the difference.
    pub fn with_preallocation(mut self, bytes: u64) -> Self {
        self.preallocate = bytes.min(MAX_PREALLOCATION);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl SegmentStore for FileStore {
    fn segments(&self) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(num) = name.strip_suffix(".jsonl")
                && num.len() == 20
                && let Ok(seq) = num.parse::<u64>()
            {
                out.push(seq);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn read(&self, first_seq: u64) -> io::Result<Vec<u8>> {
        std::fs::read(self.dir.join(segment_file_name(first_seq))).map(without_unwritten_tail)
    }

    fn open_for_append(&mut self, first_seq: u64, len: u64) -> io::Result<()> {
        if let Some(mut previous) = self.active.take() {
            previous.finish()?;
        }
        let path = self.dir.join(segment_file_name(first_seq));
        let existed = path.exists();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        // Past `len` is a torn tail, or space preallocated before a crash: cut, so that no old
        // byte can follow new records.
        if file.metadata()?.len() > len {
            file.set_len(len)?;
            file.sync_all()?;
        }
        if !existed {
            file.sync_all()?;
            sync_dir(&self.dir)?;
        }
        self.active = Some(ActiveSegment {
            file,
            len,
            allocated: len,
        });
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let preallocate = self.preallocate;
        let active = self
            .active
            .as_mut()
            .ok_or_else(|| io::Error::other("no active segment"))?;
        let end = active.len + bytes.len() as u64;
        write_at(&mut active.file, bytes, active.len)?;
        active.len = end;
        if preallocate > 0 && end > active.allocated {
            // Zeros written, not a sparse extension: a write into a hole still allocates
            // blocks at the next sync, which is the metadata work preallocation is there to
            // take off the commits.
            let allocated = end.saturating_add(preallocate);
            write_zeros(&mut active.file, end, allocated)?;
            active.allocated = allocated;
        }
        active.allocated = active.allocated.max(end);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        match self.active.as_mut() {
            // Also persists a size change (preallocation), which reading the data needs.
            Some(active) => active.file.sync_data(),
            None => Ok(()),
        }
    }

    fn write_checkpoint(&mut self, note: &str) -> io::Result<()> {
        let tmp = self.dir.join("checkpoint.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(note.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join("checkpoint"))?;
        sync_dir(&self.dir)
    }

    fn read_checkpoint(&self) -> io::Result<Option<String>> {
        match std::fs::read_to_string(self.dir.join("checkpoint")) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One storage operation, as recorded by [`MemStore`] for crash simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Bytes appended to a segment.
    Write {
        /// Segment.
        segment: u64,
        /// Byte offset where the write started.
        offset: usize,
        /// Length.
        len: usize,
    },
    /// A segment created (durably: the file store syncs the directory).
    Create {
        /// Segment.
        segment: u64,
    },
    /// fsync of a segment.
    Sync {
        /// Segment.
        segment: u64,
    },
}

#[derive(Debug, Default)]
struct MemInner {
    segments: BTreeMap<u64, Vec<u8>>,
    active: Option<u64>,
    checkpoint: Option<String>,
    ops: Vec<StoreOp>,
    fail_after_ops: Option<usize>,
}

/// Segments in memory. Clones share the same contents, so a test can keep a handle while the
/// log's writer owns another. Every write and fsync is recorded ([`MemStore::ops`]) and
/// [`MemStore::crash_image`] rebuilds what a disk would hold after a crash at any point.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    inner: Arc<Mutex<MemInner>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, MemInner>> {
        self.inner
            .lock()
            .map_err(|_| io::Error::other("store lock poisoned"))
    }

    /// The operations so far.
    pub fn ops(&self) -> Vec<StoreOp> {
        self.lock().map(|i| i.ops.clone()).unwrap_or_default()
    }

    /// Makes every operation after the first `n` fail, like a disk that went away.
    pub fn fail_after(&self, n: usize) {
        if let Ok(mut i) = self.lock() {
            i.fail_after_ops = Some(n);
        }
    }

    /// A store holding what survives a crash right after operation `ops[..at]`:
    /// each segment keeps the bytes covered by its last fsync, plus the first `torn` bytes
    /// written after that (a torn, unsynced write; 0 for none).
    pub fn crash_image(&self, at: usize, torn: usize) -> MemStore {
        let Ok(inner) = self.lock() else {
            return MemStore::new();
        };
        let mut durable: BTreeMap<u64, usize> = BTreeMap::new();
        let mut written: BTreeMap<u64, usize> = BTreeMap::new();
        for op in inner.ops.iter().take(at) {
            match op {
                StoreOp::Create { segment } => {
                    durable.entry(*segment).or_insert(0);
                }
                StoreOp::Write {
                    segment,
                    offset,
                    len,
                } => {
                    durable.entry(*segment).or_insert(0);
                    written.insert(*segment, offset + len);
                }
                StoreOp::Sync { segment } => {
                    let w = written.get(segment).copied().unwrap_or(0);
                    durable.insert(*segment, w);
                }
            }
        }
        let mut segments = BTreeMap::new();
        for (seg, keep) in &durable {
            let data = inner
                .segments
                .get(seg)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let upto = written.get(seg).copied().unwrap_or(*keep);
            let end = (*keep + torn).min(upto).min(data.len());
            segments.insert(*seg, data.get(..end).unwrap_or_default().to_vec());
        }
        MemStore {
            inner: Arc::new(Mutex::new(MemInner {
                segments,
                active: None,
                checkpoint: inner.checkpoint.clone(),
                ops: Vec::new(),
                fail_after_ops: None,
            })),
        }
    }

    /// Replaces a segment's bytes (for tamper tests).
    pub fn set_segment(&self, first_seq: u64, bytes: Vec<u8>) {
        if let Ok(mut i) = self.lock() {
            i.segments.insert(first_seq, bytes);
        }
    }

    fn check_failure(inner: &MemInner) -> io::Result<()> {
        match inner.fail_after_ops {
            Some(n) if inner.ops.len() >= n => Err(io::Error::other("simulated storage failure")),
            _ => Ok(()),
        }
    }
}

impl SegmentStore for MemStore {
    fn segments(&self) -> io::Result<Vec<u64>> {
        Ok(self.lock()?.segments.keys().copied().collect())
    }

    fn read(&self, first_seq: u64) -> io::Result<Vec<u8>> {
        self.lock()?
            .segments
            .get(&first_seq)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such segment"))
    }

    fn open_for_append(&mut self, first_seq: u64, len: u64) -> io::Result<()> {
        let mut inner = self.lock()?;
        Self::check_failure(&inner)?;
        if !inner.segments.contains_key(&first_seq) {
            inner.ops.push(StoreOp::Create { segment: first_seq });
        }
        let seg = inner.segments.entry(first_seq).or_default();
        seg.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        inner.active = Some(first_seq);
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut inner = self.lock()?;
        Self::check_failure(&inner)?;
        let active = inner
            .active
            .ok_or_else(|| io::Error::other("no active segment"))?;
        let seg = inner.segments.entry(active).or_default();
        let offset = seg.len();
        seg.extend_from_slice(bytes);
        inner.ops.push(StoreOp::Write {
            segment: active,
            offset,
            len: bytes.len(),
        });
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut inner = self.lock()?;
        Self::check_failure(&inner)?;
        if let Some(active) = inner.active {
            inner.ops.push(StoreOp::Sync { segment: active });
        }
        Ok(())
    }

    fn write_checkpoint(&mut self, note: &str) -> io::Result<()> {
        let mut inner = self.lock()?;
        Self::check_failure(&inner)?;
        inner.checkpoint = Some(note.to_owned());
        Ok(())
    }

    fn read_checkpoint(&self) -> io::Result<Option<String>> {
        Ok(self.lock()?.checkpoint.clone())
    }
}
