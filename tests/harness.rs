//! Starts real Paddock servers (the built binary) on loopback for tests, and a few raw
//! socket helpers for what a client library will not send.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: Arc<tempfile::TempDir>,
    pub extra: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(extra: &str) -> Server {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Server::start_in(dir, extra, 0)
    }

    /// Starts on `dir` (reused across restarts); port 0 picks a free one.
    pub fn start_in(dir: Arc<tempfile::TempDir>, extra: &str, port: u16) -> Server {
        Server::try_start_in(dir, extra, port)
            .unwrap_or_else(|log| panic!("paddock did not start: {log:?}"))
    }

    /// Like `start_in`; when the server exits (or does not serve within 20 s) instead,
    /// everything it logged.
    fn try_start_in(
        dir: Arc<tempfile::TempDir>,
        extra: &str,
        port: u16,
    ) -> Result<Server, Vec<String>> {
        let cfg = dir.path().join("zoo.cfg");
        let data = dir.path().join("data");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=200\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n4lw.commands.whitelist=*\nextendedTypesEnabled=true\nznode.container.checkIntervalMs=200\nminSessionTimeout=400\nmaxSessionTimeout=60000\npaddock.pinCores=false\npreAllocSize=1024\n{extra}\n",
                data.display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .arg("start-foreground")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn paddock");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("serving on ").nth(1) {
                    let port: u16 = rest
                        .split(' ')
                        .next()
                        .unwrap()
                        .rsplit(':')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
                log2.lock().unwrap().push(line);
            }
        });
        // The sender goes when stderr closes: a server that exited is seen at once, with
        // its whole log.
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(log.lock().unwrap().clone());
            }
        };
        Ok(Server {
            child,
            port,
            dir,
            extra: extra.to_owned(),
            log,
        })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// kill -9, then start again on the same data and, if it can be had, the same port.
    ///
    /// The port was free while this server held it, but a parallel test's bind(0) may take
    /// it in the gap (or a client's connect its local port): while the new server exits
    /// with "address already in use", retry for up to 5 s, then take a fresh port. Every
    /// caller reaches the restarted server through `addr()`/`port`, never the old address.
    pub fn restart(mut self) -> Server {
        self.kill9();
        let (dir, extra, port) = (self.dir.clone(), self.extra.clone(), self.port);
        // Dropped, not forgotten: a forgotten Server would keep its Arc<TempDir> forever
        // and the data directory would never be removed.
        drop(self);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut port = port;
        // What the failed attempts logged: recovery runs before the bind, so a line a
        // test looks for (a truncated tail, say) may be in the first attempt's log only.
        let mut before = Vec::new();
        loop {
            match Server::try_start_in(dir.clone(), &extra, port) {
                Ok(s) => {
                    s.log.lock().unwrap().splice(0..0, before);
                    return s;
                }
                Err(log)
                    if port != 0 && log.iter().any(|l| l.contains("Address already in use")) =>
                {
                    before.extend(log);
                    if Instant::now() > deadline {
                        port = 0;
                    } else {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                Err(log) => panic!("paddock did not restart: {log:?}"),
            }
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Does the server's log say `needle` (waiting a little for the log to arrive)?
    pub fn logged(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.log_text().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `paddock start-foreground CFG` for a start-up that is expected to fail: its exit
/// code and what it wrote to stderr.
/// Runs the server on `cfg` expecting it to refuse to start: (exit code, stderr). A
/// server that starts instead is killed after 20 s and reported with exit code `None`,
/// so a config that should fail but does not fails the test rather than hanging it.
pub fn start_failing(cfg: &std::path::Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .arg("start-foreground")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run paddock");
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            _ if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    (code, reader.join().unwrap_or_default())
}

pub async fn connect(s: &Server) -> zookeeper_client::Client {
    connect_with(s, Duration::from_secs(10)).await
}

pub async fn connect_with(s: &Server, timeout: Duration) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(timeout)
        .with_connection_timeout(Duration::from_secs(5))
        .connect(&s.addr())
        .await
        .expect("connect")
}

/// A four-letter word over a raw socket.
pub fn four(s: &Server, cmd: &str) -> String {
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(cmd.as_bytes()).unwrap();
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

/// A raw protocol session: handshake done, frames in and out.
pub struct Raw {
    pub sock: TcpStream,
    pub session: i64,
}

pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

impl Raw {
    pub fn connect(s: &Server) -> Raw {
        Raw::connect_addr(&s.addr())
    }
    /// A session of 2 s asked at `addr` (any member of an ensemble).
    pub fn connect_addr(addr: &str) -> Raw {
        let (raw, _, _) =
            Raw::try_session(addr, 0, &[], 2000).unwrap_or_else(|| panic!("no session at {addr}"));
        raw
    }
    /// One try at a raw session at `addr`: resumes `session` with `passwd` (0 and empty:
    /// a new session), asking `timeout_ms`. The connection, the session's password and
    /// its negotiated timeout; `None` if the connection or the handshake fails or the
    /// session is refused (id 0).
    pub fn try_session(
        addr: &str,
        session: i64,
        passwd: &[u8],
        timeout_ms: i32,
    ) -> Option<(Raw, Vec<u8>, i32)> {
        let mut sock = TcpStream::connect(addr).ok()?;
        sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        sock.set_nodelay(true).ok()?;
        sock.write_all(&frame(&connect_request(session, passwd, timeout_ms)))
            .ok()?;
        let mut raw = Raw { sock, session: 0 };
        let resp = raw.read_frame()?;
        // protocolVersion · timeOut · sessionId · passwd · readOnly
        if resp.len() != 37 {
            return None;
        }
        let timeout = i32::from_be_bytes(resp[4..8].try_into().unwrap());
        raw.session = i64::from_be_bytes(resp[8..16].try_into().unwrap());
        let passwd = resp[20..36].to_vec();
        (raw.session != 0).then_some((raw, passwd, timeout))
    }
    pub fn send(&mut self, xid: i32, op: i32, body: &[u8]) {
        self.send_all(&[(xid, op, body)]);
    }
    /// Requests pipelined in one write (so the server reads them in one go).
    pub fn send_all(&mut self, reqs: &[(i32, i32, &[u8])]) {
        let mut out = Vec::new();
        for &(xid, op, body) in reqs {
            let mut b = xid.to_be_bytes().to_vec();
            b.extend_from_slice(&op.to_be_bytes());
            b.extend_from_slice(body);
            out.extend(frame(&b));
        }
        self.sock.write_all(&out).unwrap();
    }
    /// Next frame, or None when the server closed the connection.
    pub fn read_frame(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.sock.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.sock.read_exact(&mut body).ok()?;
        Some(body)
    }
    /// (xid, zxid, err, body) of the next reply.
    pub fn reply(&mut self) -> Option<(i32, i64, i32, Vec<u8>)> {
        let f = self.read_frame()?;
        Some((
            i32::from_be_bytes(f[0..4].try_into().unwrap()),
            i64::from_be_bytes(f[4..12].try_into().unwrap()),
            i32::from_be_bytes(f[12..16].try_into().unwrap()),
            f[16..].to_vec(),
        ))
    }
    pub fn closed(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut b = [0u8; 256];
        while Instant::now() < deadline {
            match self.sock.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
        false
    }
}

/// A ConnectRequest body (protocol 0, lastZxidSeen 0): resumes `session` with `passwd`
/// (0 and empty: a new session), asking `timeout_ms`.
pub fn connect_request(session: i64, passwd: &[u8], timeout_ms: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&timeout_ms.to_be_bytes());
    b.extend_from_slice(&session.to_be_bytes());
    b.extend_from_slice(&(passwd.len() as i32).to_be_bytes());
    b.extend_from_slice(passwd);
    b.push(0);
    b
}

/// A watch notification's body (the frame after its reply header): (event type, path).
pub fn notification(body: &[u8]) -> (i32, String) {
    let kind = i32::from_be_bytes(body[0..4].try_into().unwrap());
    let n = i32::from_be_bytes(body[8..12].try_into().unwrap()) as usize;
    (
        kind,
        String::from_utf8_lossy(&body[12..12 + n]).into_owned(),
    )
}

/// A CreateRequest body: `path`, `data`, world:anyone with every permission, `flags`
/// (0 persistent, 1 ephemeral, 2 sequential, 3 both).
pub fn create_body(path: &str, data: &[u8], flags: i32) -> Vec<u8> {
    create_body_acl(path, data, "world", "anyone", flags)
}

/// As `create_body`, with one ACL entry `scheme:id` holding every permission.
pub fn create_body_acl(path: &str, data: &[u8], scheme: &str, id: &str, flags: i32) -> Vec<u8> {
    let mut b = jute_string(path);
    b.extend_from_slice(&(data.len() as i32).to_be_bytes());
    b.extend_from_slice(data);
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&31i32.to_be_bytes());
    b.extend(jute_string(scheme));
    b.extend(jute_string(id));
    b.extend_from_slice(&flags.to_be_bytes());
    b
}

pub fn jute_string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

/// The state letter of a process or thread (`/proc/PID/stat` or `/proc/PID/task/TID/stat`
/// at `stat`): 'R', 'S', 'T', 'Z'...; `None` once it is gone.
pub fn proc_state(stat: &std::path::Path) -> Option<char> {
    let stat = std::fs::read(stat).ok()?;
    let stat = String::from_utf8_lossy(&stat);
    // "pid (comm) S ...": the state follows the last ')' (comm may hold any bytes).
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
