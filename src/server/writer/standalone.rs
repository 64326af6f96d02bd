//! The standalone server's part. Its pipeline, as ZooKeeper's ZooKeeperServer lists its
//! processors: prep (stage) → append → sync → apply → answer, all on this thread, the
//! sync once per part of the queue (group commit). What only a standalone server does:
//! with the log out of space it refuses the batch and goes on serving reads (an
//! ensemble member leaves its role instead: role.rs, `out_of_space`).

use super::*;

impl<L: Storage> WriterLoop<L> {
    /// The log has no space for the staged txns: none of them reached it. Refuse them all
    /// and forget what they staged, so the tree, the zxids and the sessions stay as the
    /// log has them; reads go on, and a later batch is tried afresh (the disk may have
    /// room again). A client gets ZooKeeper's SystemError for its write.
    pub(super) fn refuse_batch(&mut self, e: &LogError) {
        self.log.discard();
        let pending = std::mem::take(&mut self.pending);
        if !self.disk_full {
            self.disk_full = true;
            self.shared.writes_refused.store(true, Relaxed);
            log::error!(
                "{e}: refusing writes (SystemError to clients) until space is freed; reads go on"
            );
        }
        self.shared
            .stats
            .refused_writes
            .fetch_add(pending.len() as u64, Relaxed);
        self.staged.clear();
        self.next_zxid = self.shared.last_zxid() + 1;
        self.staged_digest = self.idx.digest;
        let zxid = self.shared.last_zxid();
        for p in pending {
            let session = p.hdr.client_id;
            let refused = reply_frame_err(zxid);
            match p.waiter {
                Waiter::Reply { conn, xid, .. } if mutation::active(Mutation::IgnoreFullDisk) => {
                    let f = reply_frame(xid, zxid, 0, |_| {});
                    self.frame(conn, f, true)
                }
                Waiter::Reply { conn, xid, .. } => self.frame(conn, refused(xid), true),
                Waiter::Connect { conn, .. } => self.send(conn, ToReactor::Close { conn }),
                Waiter::CloseSession { conn, xid } => {
                    if let Some(conn) = conn {
                        self.frame(conn, refused(xid), true);
                    }
                    self.reopen(session);
                }
                Waiter::Internal => self.reopen(session),
            }
            // Reads behind a refused write are still answered, after its error.
            self.answered(session, p.ticket);
        }
        self.wake_reactors();
    }
}
