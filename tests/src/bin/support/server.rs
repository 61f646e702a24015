//! A `kefu serve` child process for the bench binaries (`load_chat`, `cold_start`): started
//! on a free port, asked when it is ready, killed when dropped. Each binary includes it
//! with `#[path]` and uses a part of it, hence the allowance below.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const SECRET: &str = "kefu's bench tools sign their tokens with this, 32+ bytes";

pub struct Server {
    child: Child,
    pub addr: String,
    /// When the child was started.
    pub started: Instant,
    data: PathBuf,
    _temp: Option<tempfile::TempDir>,
    store: Option<String>,
    kefu: PathBuf,
    /// Lines of the server's log containing one of the watched phrases, with when they came.
    seen: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `kefu serve` on `store` (the embedded store when `None`), its data directory `data`
    /// (a fresh temporary one when `None`); log lines holding a phrase of `watch` are kept.
    pub fn start(
        kefu: &Path,
        store: Option<&str>,
        data: Option<&Path>,
        watch: &[&'static str],
    ) -> anyhow::Result<Server> {
        let temp = match data {
            Some(_) => None,
            None => Some(tempfile::tempdir()?),
        };
        let data = data
            .map(Path::to_path_buf)
            .or_else(|| temp.as_ref().map(|t| t.path().join("data")))
            .context("a data directory")?;
        let mut command = Command::new(kefu);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--rate-limit", "0"])
            .env("KEFU_DATA_DIR", &data)
            .env("KEFU_TOKEN_SECRET", SECRET)
            .env("KEFU_LOG", "warn,kefu=info")
            .env_remove("KEFU_READ_STORE")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match store {
            Some(s) => command.env("KEFU_STORE", s),
            None => command.env_remove("KEFU_STORE"),
        };
        let started = Instant::now();
        let mut child = command.spawn().context("start kefu serve")?;
        let stderr = child.stderr.take().context("kefu's stderr")?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (watch, kept) = (watch.to_vec(), seen.clone());
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(at) = line.find("listen=") {
                    let addr = line[at + 7..].split_whitespace().next().map(str::to_owned);
                    let _ = tx.send(addr);
                    sent = true;
                }
                if watch.iter().any(|w| line.contains(w)) {
                    kept.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((line.clone(), Instant::now()));
                }
                if line.contains("ERROR") {
                    eprintln!("kefu: {line}");
                }
            }
        });
        // A first start on a big log builds its read models before it listens.
        let addr = rx
            .recv_timeout(Duration::from_secs(3600))
            .ok()
            .flatten()
            .context("kefu serve never said where it listens")?;
        Ok(Server {
            child,
            addr,
            started,
            data,
            _temp: temp,
            store: store.map(str::to_owned),
            kefu: kefu.to_path_buf(),
            seen,
        })
    }

    /// Waits until `/readyz` answers 200; how long after the start that was.
    pub async fn ready(&self, limit: Duration) -> anyhow::Result<Duration> {
        loop {
            let mut conn = TcpStream::connect(&self.addr).await?;
            let request = format!("GET /readyz HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
            conn.write_all(request.as_bytes()).await?;
            if read_response(&mut conn).await?.0 == 200 {
                return Ok(self.started.elapsed());
            }
            if self.started.elapsed() > limit {
                bail!("kefu serve was not ready within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How long after the start the first log line holding `phrase` came, if it has.
    pub fn said(&self, phrase: &str) -> Option<Duration> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(line, _)| line.contains(phrase))
            .map(|(_, at)| at.duration_since(self.started))
    }

    /// A token for `role` and `id`, minted by `kefu token` with the server's secret.
    pub fn token(&self, role: &str, id: &str) -> anyhow::Result<String> {
        let mut command = Command::new(&self.kefu);
        command
            .args(["token", "--role", role, "--id", id])
            .env("KEFU_TOKEN_SECRET", SECRET)
            .env("KEFU_DATA_DIR", &self.data);
        if let Some(s) = &self.store {
            command.env("KEFU_STORE", s);
        }
        let out = command.output()?;
        if !out.status.success() {
            bail!("kefu token: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// User and system CPU seconds the server has used.
    pub fn cpu(&self) -> f64 {
        cpu_of(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Resident memory, in bytes.
    pub fn rss(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024
    }
}

/// utime + stime of a `/proc/<pid>/stat`, in seconds (clock ticks of 1/100 s on Linux).
pub fn cpu_of(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// One response with a `Content-Length` body: its status and body.
pub async fn read_response(conn: &mut TcpStream) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .context("a response without Content-Length")?;
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection mid-body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, buf[head_end..head_end + length].to_vec()))
}
