//! [`RedisState`]: the shared state in Redis, for the workers and replicas of a service.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use redis::{Client, Connection, ConnectionLike, ErrorKind, RedisError, Script, ServerErrorKind};

use crate::{
    Counter, MAX_TAINT_SOURCES, MAX_TASK_FINGERPRINTS, SharedState, StateError, TaskTaint,
    check_key,
};

/// How long past its expiry Redis keeps a key (seconds).
const EXPIRY_GRACE: i64 = 300;

/// 9999-12-31T23:59:59Z: times are clamped to ± this.
const MAX_SECONDS: i64 = 253_402_300_799;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one command may wait for the server.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How many keys one `SCAN` step and one prune script handle.
const PRUNE_BATCH: usize = 500;

/// KEYS: the marker. ARGV: expires_at, now, the server-side expiry for `EXAT`.
static USE_ONCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local held = redis.call('GET', KEYS[1])
if held then
  local exp = tonumber(held)
  if exp == nil then error('single-use marker ' .. KEYS[1] .. ' is not a time') end
  if exp >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[3])
return 1
",
    )
});

/// KEYS: the budgets. ARGV: now, expires_at, grace, then one limit per key.
static SPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local expires_at = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local function read(key)
  local f = redis.call('HMGET', key, 'n', 'e')
  local exp = tonumber(f[2])
  local spent = 0
  if exp and exp >= now then
    spent = tonumber(f[1])
    if spent == nil then error('budget ' .. key .. ' has no count') end
  end
  return spent, exp
end
for i, key in ipairs(KEYS) do
  local spent = read(key)
  if spent >= tonumber(ARGV[3 + i]) then return 0 end
end
for _, key in ipairs(KEYS) do
  local spent, exp = read(key)
  if not exp or exp < expires_at then exp = expires_at end
  redis.call('HSET', key, 'n', string.format('%d', spent + 1), 'e', string.format('%d', exp))
  redis.call('EXPIREAT', key, string.format('%d', math.max(1, exp + grace)))
end
return 1
",
    )
});

/// KEYS: the task. ARGV: now.
static READ_TAINT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local exp = tonumber(redis.call('HGET', KEYS[1], 'e'))
if not exp or exp < tonumber(ARGV[1]) then return {} end
return redis.call('HGETALL', KEYS[1])
",
    )
});

/// KEYS: the task. ARGV: now, expires_at, grace, tainted (0/1), overflowed (0/1), the source
/// cap, the fingerprint cap, the number of sources, the sources (sorted), the fingerprints
/// (sorted). Walks them exactly as `TaskTaint::merge` does.
static EXTEND_TAINT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local expires_at = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local exp = tonumber(redis.call('HGET', key, 'e'))
if exp and exp < now then
  redis.call('DEL', key)
  exp = nil
end
if not exp or exp < expires_at then exp = expires_at end
local sources = tonumber(redis.call('HGET', key, 'ns') or '0')
local fingerprints = tonumber(redis.call('HGET', key, 'nf') or '0')
local tainted = redis.call('HGET', key, 't') == '1' or ARGV[4] == '1'
local overflowed = redis.call('HGET', key, 'o') == '1' or ARGV[5] == '1'
local max_sources = tonumber(ARGV[6])
local max_fingerprints = tonumber(ARGV[7])
local offered = tonumber(ARGV[8])
for i = 9, 8 + offered do
  if sources < max_sources then
    sources = sources + redis.call('HSETNX', key, 's:' .. ARGV[i], '1')
  else
    tainted = true
  end
end
for i = 9 + offered, #ARGV do
  if fingerprints >= max_fingerprints then
    overflowed = true
    break
  end
  fingerprints = fingerprints + redis.call('HSETNX', key, 'f:' .. ARGV[i], '1')
end
redis.call('HSET', key,
  'e', string.format('%d', exp),
  'ns', string.format('%d', sources),
  'nf', string.format('%d', fingerprints),
  't', tainted and '1' or '0',
  'o', overflowed and '1' or '0')
redis.call('EXPIREAT', key, string.format('%d', math.max(1, exp + grace)))
return 1
",
    )
});

/// KEYS: keys of this state found by `SCAN`. ARGV: now. Drops those whose stored expiry is
/// before `now`.
static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local dropped = 0
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  local exp = nil
  if kind == 'string' then
    exp = tonumber(redis.call('GET', key))
  elseif kind == 'hash' then
    exp = tonumber(redis.call('HGET', key, 'e'))
  end
  if exp and exp < now then
    redis.call('DEL', key)
    dropped = dropped + 1
  end
end
return dropped
",
    )
});

/// State every worker and replica of a guarded service shares, in Redis.
///
/// Every operation is one Lua script, and Redis runs a script alone: nothing else touches the
/// keys between the script's check and its write, whichever client asks.
///
/// - A single-use marker is a string key holding its expiry; the script sets it unless a live
///   one is there, and the key gets `EXAT`.
/// - A budget is a hash (`n` calls spent, `e` expiry); the spend script reads every budget,
///   and increments all of them only when none is at its limit.
/// - A task's taint is one hash: `s:<source>` and `f:<fingerprint>` fields, their counts, the
///   two flags and the expiry. The script applies the same caps in the same order as
///   [`TaskTaint::merge`], so the result is the in-memory one.
///
/// Expiry is decided by the `now` each call passes, exactly as in the other backends: the
/// scripts compare it with the expiry stored in the value. Redis also drops each key by its
/// own clock (`EXAT`/`EXPIREAT`), five minutes after its expiry, so storage stays bounded
/// without [`RedisState::prune`]. The grace keeps a marker alive while a guard whose clock is
/// behind the server's still counts it live; clocks further apart than that would let Redis
/// forget a marker early. Times are clamped to the years -9999 ..= 9999 (Lua numbers are
/// doubles, and Redis refuses larger expiry times).
///
/// Several keys are touched by one script, so a Redis Cluster is not supported (a budget chain
/// spans hash slots); use one server, or a primary with replicas. The connection lives behind
/// a mutex; a connection that turns out broken is replaced once and the call runs again
/// (when the first run did complete, the second answers as a second caller would: it errs
/// toward refusing).
///
/// ```no_run
/// use agentiam_state::{Counter, RedisState, SharedState};
/// let state = RedisState::connect("redis://127.0.0.1:6379/")?.with_prefix("billing-guard:");
/// let now = 1_800_000_000;
/// assert!(state.use_once("approval:n-1", now + 60, now)?);
/// assert!(!state.use_once("approval:n-1", now + 60, now)?);
/// assert!(state.spend(&[Counter::new("budget:jti-1", 10)], now + 600, now)?);
/// # Ok::<(), agentiam_state::StateError>(())
/// ```
pub struct RedisState {
    client: Client,
    conn: Mutex<Option<Connection>>,
    prefix: String,
}

impl fmt::Debug for RedisState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The address only: the connection info can hold a password.
        f.debug_struct("RedisState")
            .field(
                "addr",
                &self.client.get_connection_info().addr().to_string(),
            )
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn redis_err(e: &RedisError) -> StateError {
    StateError(format!("redis: {e}"))
}

/// Whether `e` leaves the connection unusable (or pointing at a replica after a failover).
fn is_broken(e: &RedisError, conn: &Connection) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Io | ErrorKind::Parse | ErrorKind::Server(ServerErrorKind::ReadOnly)
    ) || !conn.is_open()
}

/// A time as the scripts take it (see [`RedisState`]).
fn clamp(t: i64) -> i64 {
    t.clamp(-MAX_SECONDS, MAX_SECONDS)
}

/// `text` with the characters `SCAN MATCH` treats as a pattern escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

impl RedisState {
    /// The key prefix when none is given.
    pub const DEFAULT_PREFIX: &str = "agentiam:";

    /// Connects to the Redis server at `url` (`redis://[user:password@]host:port/db`,
    /// `rediss://` needs a TLS feature of the `redis` crate, `redis+unix:///path`), with the
    /// key prefix [`RedisState::DEFAULT_PREFIX`]. Fails (within 5 s) when the server cannot be
    /// reached.
    pub fn connect(url: &str) -> Result<Self, StateError> {
        let client = Client::open(url).map_err(|e| redis_err(&e))?;
        let mut state = Self {
            client,
            conn: Mutex::new(None),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
        };
        // Connect now: a server that cannot be reached fails here, not at the first call.
        let conn = state.open()?;
        if let Ok(slot) = state.conn.get_mut() {
            *slot = Some(conn);
        }
        Ok(state)
    }

    /// Puts every key under `prefix` instead of [`RedisState::DEFAULT_PREFIX`]: several
    /// services (or test runs) can share one server without seeing each other's state.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        // The connection's name shows the prefix (`CLIENT LIST`); rename the open one.
        let name = self.client_name();
        if let Ok(Some(conn)) = self.conn.get_mut() {
            let _ = redis::cmd("CLIENT").arg("SETNAME").arg(&name).exec(conn);
        }
        self
    }

    /// The prefix of every key this state writes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Forgets every single-use marker, budget and taint under this prefix that expired
    /// before `now`; returns how many keys it dropped. Redis drops keys by itself a little
    /// after they expire (see [`RedisState`]), so this is only needed to free memory sooner,
    /// or when the callers' clock runs ahead of the server's.
    pub fn prune(&self, now: i64) -> Result<u64, StateError> {
        let now = clamp(now);
        let patterns: Vec<String> = ["once:", "budget:", "taint:"]
            .iter()
            .map(|kind| format!("{}{kind}*", glob_escape(&self.prefix)))
            .collect();
        self.run(|conn| {
            let mut dropped = 0;
            for pattern in &patterns {
                let mut cursor = 0u64;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(PRUNE_BATCH)
                        .query(conn)?;
                    if !keys.is_empty() {
                        let mut call = PRUNE.prepare_invoke();
                        for key in &keys {
                            call.key(key);
                        }
                        dropped += call.arg(now).invoke::<u64>(conn)?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Ok(dropped)
        })
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }

    /// `agentiam-state:<prefix>`, with what a client name may not hold replaced.
    fn client_name(&self) -> String {
        let prefix: String = self
            .prefix
            .chars()
            .take(64)
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect();
        format!("agentiam-state:{prefix}")
    }

    fn open(&self) -> Result<Connection, StateError> {
        let mut conn = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| redis_err(&e))?;
        conn.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| conn.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| redis_err(&e))?;
        // Only a label for `CLIENT LIST`; a server that refuses it (ACLs) is still usable.
        let _ = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(self.client_name())
            .exec(&mut conn);
        Ok(conn)
    }

    fn conn(&self) -> Result<MutexGuard<'_, Option<Connection>>, StateError> {
        self.conn
            .lock()
            .map_err(|_| StateError("redis: connection lock poisoned".into()))
    }

    /// Runs `f` on the connection, opening it if needed. When the connection turns out broken
    /// it is replaced once and `f` runs again.
    fn run<T>(
        &self,
        f: impl Fn(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, StateError> {
        let mut slot = self.conn()?;
        let mut fresh = false;
        loop {
            let conn = match &mut *slot {
                Some(conn) if conn.is_open() => conn,
                _ => {
                    *slot = None;
                    let opened = self.open()?;
                    fresh = true;
                    slot.insert(opened)
                }
            };
            match f(conn) {
                Ok(value) => return Ok(value),
                Err(e) if is_broken(&e, conn) => {
                    *slot = None;
                    if fresh {
                        return Err(redis_err(&e));
                    }
                }
                Err(e) => return Err(redis_err(&e)),
            }
        }
    }
}

impl SharedState for RedisState {
    fn use_once(&self, key: &str, expires_at: i64, now: i64) -> Result<bool, StateError> {
        check_key(key)?;
        let key = self.key("once", key);
        let expires_at = clamp(expires_at);
        let server_expiry = (expires_at + EXPIRY_GRACE).max(1);
        self.run(|conn| {
            USE_ONCE
                .key(&key)
                .arg(expires_at)
                .arg(clamp(now))
                .arg(server_expiry)
                .invoke::<i64>(conn)
                .map(|taken| taken == 1)
        })
    }

    fn spend(&self, counters: &[Counter], expires_at: i64, now: i64) -> Result<bool, StateError> {
        for c in counters {
            check_key(&c.key)?;
        }
        if counters.is_empty() {
            return Ok(true);
        }
        let mut call = SPEND.prepare_invoke();
        for c in counters {
            call.key(self.key("budget", &c.key));
        }
        call.arg(clamp(now))
            .arg(clamp(expires_at))
            .arg(EXPIRY_GRACE);
        for c in counters {
            call.arg(c.limit);
        }
        self.run(|conn| call.invoke::<i64>(conn).map(|spent| spent == 1))
    }

    fn task_taint(&self, task: &str, now: i64) -> Result<TaskTaint, StateError> {
        check_key(task)?;
        let key = self.key("taint", task);
        let fields: Vec<String> =
            self.run(|conn| READ_TAINT.key(&key).arg(clamp(now)).invoke(conn))?;
        let mut taint = TaskTaint::default();
        let mut fingerprints = BTreeSet::new();
        for pair in fields.chunks_exact(2) {
            let [field, value] = pair else { continue };
            if let Some(source) = field.strip_prefix("s:") {
                taint.sources.insert(source.to_owned());
            } else if let Some(f) = field.strip_prefix("f:") {
                let f = f.parse::<u64>().map_err(|_| {
                    StateError(format!(
                        "redis: task {task:?} holds a bad fingerprint {f:?}"
                    ))
                })?;
                fingerprints.insert(f);
            } else if field == "t" {
                taint.tainted = value == "1";
            } else if field == "o" {
                taint.overflowed = value == "1";
            }
        }
        taint.fingerprints = fingerprints;
        Ok(taint)
    }

    fn extend_task_taint(
        &self,
        task: &str,
        add: &TaskTaint,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StateError> {
        check_key(task)?;
        let mut call = EXTEND_TAINT.prepare_invoke();
        call.key(self.key("taint", task))
            .arg(clamp(now))
            .arg(clamp(expires_at))
            .arg(EXPIRY_GRACE)
            .arg(u8::from(add.tainted))
            .arg(u8::from(add.overflowed))
            .arg(MAX_TAINT_SOURCES)
            .arg(MAX_TASK_FINGERPRINTS)
            .arg(add.sources.len());
        // In the sets' order, which is the order `TaskTaint::merge` walks them in.
        for source in &add.sources {
            call.arg(source);
        }
        for f in &add.fingerprints {
            call.arg(f);
        }
        self.run(|conn| call.invoke::<i64>(conn).map(|_| ()))
    }
}
