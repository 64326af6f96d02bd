//! The reactor/writer hand-off: what every write (and every watch-setting read) pays to
//! cross threads. A "writer" thread takes `ToWriter` messages from a crossbeam channel and
//! answers each with a `ToReactor` frame on the reactor's inbox, then wakes the reactor's
//! `mio::Poll` with its `Waker` (an eventfd), as the server's writer does.
//!
//! - `round_trip`: one message there and its answer back, the reactor blocked in `poll`
//!   meanwhile: the latency floor of a write that needs no disk.
//! - `batch_1000`: 1000 messages sent back to back, then all answers taken after wake-ups
//!   (the writer coalesces wake-ups as the server's does, once per drained batch).
//!
//! In test mode (`cargo test --benches`) each runs once. Results: benches/RESULTS.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_channel::{unbounded, Receiver, Sender};
use paddock::server::{ToReactor, ToWriter};
use std::sync::Arc;
use std::time::Duration;

const WAKER: mio::Token = mio::Token(0);

struct Reactor {
    poll: mio::Poll,
    events: mio::Events,
    inbox: Receiver<ToReactor>,
    to_writer: Sender<ToWriter>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Reactor {
    fn start() -> Reactor {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER).unwrap());
        let (to_reactor, inbox) = unbounded::<ToReactor>();
        let (to_writer, writer_inbox) = unbounded::<ToWriter>();
        let writer = std::thread::spawn(move || {
            while let Ok(first) = writer_inbox.recv() {
                let mut batch = vec![first];
                batch.extend(writer_inbox.try_iter());
                for m in batch {
                    if let ToWriter::Admin { conn, cmd } = m {
                        let _ = to_reactor.send(ToReactor::Admin {
                            conn,
                            cmd,
                            report: Default::default(),
                        });
                    }
                }
                let _ = waker.wake();
            }
        });
        Reactor {
            poll,
            events: mio::Events::with_capacity(64),
            inbox,
            to_writer,
            writer: Some(writer),
        }
    }

    fn send(&self, n: u64) {
        let m = ToWriter::Admin {
            conn: n,
            cmd: String::new(),
        };
        self.to_writer.send(m).unwrap();
    }

    /// Waits (in `poll`, as a reactor does) until `n` answers arrived.
    fn take(&mut self, n: usize) {
        let mut got = 0;
        while got < n {
            got += self.inbox.try_iter().count();
            if got < n {
                self.poll
                    .poll(&mut self.events, Some(Duration::from_secs(5)))
                    .unwrap();
            }
        }
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        let (dead, _) = unbounded();
        self.to_writer = dead;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn handoff(c: &mut Criterion) {
    let mut r = Reactor::start();
    let mut g = c.benchmark_group("handoff");
    g.throughput(Throughput::Elements(1));
    g.bench_function("round_trip", |b| {
        b.iter(|| {
            r.send(1);
            r.take(1);
        })
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("batch_1000", |b| {
        b.iter(|| {
            for i in 0..1000 {
                r.send(i);
            }
            r.take(1000);
        })
    });
    g.finish();
}

criterion_group!(benches, handoff);
criterion_main!(benches);
