//! Sessions: ids and passwords as ZooKeeper makes them, and a tick-bucketed expiry queue.
//!
//! Owned by the writer thread. Time comes in as a millisecond count (no clock is read here).
//! Holds: a session is in exactly one expiry bucket; buckets are multiples of tickTime, so
//! expiry costs one map operation per tick, not a timer per session.

use crate::types::{ConnId, SessionId};
use std::collections::{BTreeMap, HashSet};

/// java.util.Random, enough of it to make ZooKeeper's session passwords.
struct JavaRandom(u64);

impl JavaRandom {
    const MULT: u64 = 0x5DEECE66D;
    const MASK: u64 = (1 << 48) - 1;
    fn new(seed: i64) -> Self {
        JavaRandom((seed as u64 ^ Self::MULT) & Self::MASK)
    }
    fn next_i32(&mut self) -> i32 {
        self.0 = (self.0.wrapping_mul(Self::MULT).wrapping_add(0xB)) & Self::MASK;
        (self.0 >> 16) as i32
    }
    fn next_bytes(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() {
            let mut rnd = self.next_i32();
            let n = (out.len() - i).min(4);
            for _ in 0..n {
                out[i] = rnd as u8;
                rnd >>= 8;
                i += 1;
            }
        }
    }
}

const SUPER_SECRET: i64 = 0xB3415C00;

/// The password of a session: deterministic, so any server can check a reconnect.
pub fn password(session: SessionId) -> [u8; 16] {
    let mut out = [0u8; 16];
    JavaRandom::new(session ^ SUPER_SECRET).next_bytes(&mut out);
    out
}

/// First session id of a server started at `now_ms`.
pub fn initial_session_id(server_id: i64, now_ms: i64) -> SessionId {
    let mut id = (((now_ms as u64) << 24) >> 8) as i64 | (server_id << 56);
    if id == i64::MIN {
        id += 1;
    }
    id
}

#[derive(Debug, Clone)]
pub struct Session {
    pub timeout_ms: i32,
    expires_at_ms: u64,
    /// The connection serving this session now, if any.
    pub conn: Option<ConnId>,
    /// A closeSession txn is on its way; the session accepts nothing more.
    pub closing: bool,
}

pub struct SessionTracker {
    tick_ms: u64,
    sessions: crate::tree::FastMap<SessionId, Session>,
    buckets: BTreeMap<u64, HashSet<SessionId>>,
    next_id: SessionId,
}

impl SessionTracker {
    pub fn new(tick_ms: u64, server_id: i64, now_ms: i64) -> Self {
        SessionTracker {
            tick_ms: tick_ms.max(1),
            sessions: Default::default(),
            buckets: BTreeMap::new(),
            next_id: initial_session_id(server_id, now_ms),
        }
    }

    pub fn next_session_id(&mut self) -> SessionId {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if id != i64::MIN && id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn bucket_of(&self, deadline_ms: u64) -> u64 {
        (deadline_ms / self.tick_ms + 1) * self.tick_ms
    }

    /// Adds (or re-adds, on replay) a session.
    pub fn add(&mut self, id: SessionId, timeout_ms: i32, now_ms: u64) {
        let expires = self.bucket_of(now_ms + timeout_ms.max(0) as u64);
        if let Some(old) = self.sessions.insert(
            id,
            Session {
                timeout_ms,
                expires_at_ms: expires,
                conn: None,
                closing: false,
            },
        ) {
            self.unbucket(id, old.expires_at_ms);
        }
        self.buckets.entry(expires).or_default().insert(id);
    }

    fn unbucket(&mut self, id: SessionId, at: u64) {
        if let Some(b) = self.buckets.get_mut(&at) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&at);
            }
        }
    }

    /// Renews a session; false when it is unknown or closing.
    pub fn touch(&mut self, id: SessionId, now_ms: u64) -> bool {
        let Some(s) = self.sessions.get(&id) else {
            return false;
        };
        if s.closing {
            return false;
        }
        let (old, timeout) = (s.expires_at_ms, s.timeout_ms);
        let new = self.bucket_of(now_ms + timeout.max(0) as u64);
        if new != old {
            self.unbucket(id, old);
            self.buckets.entry(new).or_default().insert(id);
            self.sessions.get_mut(&id).unwrap().expires_at_ms = new;
        }
        true
    }

    /// As `touch`, but never earlier than the session's expiry already is: for traffic
    /// reported after the fact (a packet's time may precede a later credit, such as a
    /// resume on another connection).
    pub fn touch_later(&mut self, id: SessionId, at_ms: u64) -> bool {
        let Some(s) = self.sessions.get(&id) else {
            return false;
        };
        if s.closing {
            return false;
        }
        if self.bucket_of(at_ms + s.timeout_ms.max(0) as u64) <= s.expires_at_ms {
            return true;
        }
        self.touch(id, at_ms)
    }

    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        self.unbucket(id, s.expires_at_ms);
        Some(s)
    }

    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.get_mut(&id)
    }
    pub fn len(&self) -> usize {
        self.sessions.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&SessionId, &Session)> {
        self.sessions.iter()
    }

    /// When the next bucket falls due (ms since the epoch), if any session is in one.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.buckets.first_key_value().map(|(&at, _)| at)
    }

    /// The expiry buckets, soonest first: when each falls due (ms since the epoch) and
    /// its sessions (`dump`).
    pub fn buckets(&self) -> impl Iterator<Item = (u64, &HashSet<SessionId>)> {
        self.buckets.iter().map(|(&at, ids)| (at, ids))
    }

    /// Sessions whose bucket is due at `now_ms`, marked closing. The caller logs a
    /// closeSession txn for each.
    pub fn expire(&mut self, now_ms: u64) -> Vec<SessionId> {
        let mut out = Vec::new();
        while let Some((&at, _)) = self.buckets.first_key_value() {
            if at > now_ms {
                break;
            }
            let ids = self.buckets.remove(&at).unwrap();
            for id in ids {
                if let Some(s) = self.sessions.get_mut(&id) {
                    if !s.closing {
                        s.closing = true;
                        out.push(id);
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn expiry_is_bucketed() {
        let mut t = SessionTracker::new(2000, 1, 1_000_000);
        t.add(1, 4000, 0);
        t.add(2, 4000, 100);
        assert!(t.expire(3999).is_empty());
        assert_eq!(t.expire(6000), vec![1, 2]);
        t.add(3, 4000, 0);
        assert!(t.touch(3, 5000));
        assert!(t.expire(6000).is_empty());
        assert_eq!(t.expire(10000), vec![3]);
    }
    #[test]
    fn session_ids_look_like_zookeepers() {
        let id = initial_session_id(1, 1_700_000_000_000);
        assert_eq!(id >> 56, 1);
        assert_eq!(id & 0xFFFF, 0);
    }
}
