//! Watch tables: one-shot data/exist and child watches, persistent and persistent-recursive
//! watches, keyed by session (a session has one connection at a time).
//!
//! Owned by the writer thread. Holds: one event per (session, path, type) per trigger, even
//! when several kinds of watch of that session match; one-shot watches are gone once they
//! fire; persistent ones stay (also across the node's deletion) until removed or the
//! connection closes. Recursive watches fire Created/Deleted/DataChanged for the path and
//! every descendant, never ChildrenChanged (ZooKeeper 3.9 semantics).

use crate::proto::ops::{event, watcher_type};
use crate::types::SessionId;
use std::collections::{BTreeSet, HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Data,
    Child,
    Persistent,
    Recursive,
}

#[derive(Default)]
pub struct WatchTable {
    tables: [HashMap<String, HashSet<SessionId>>; 4],
    by_session: HashMap<SessionId, BTreeSet<(Kind, String)>>,
    /// (session, kind, path) triples held: `zk_watch_count`.
    total: usize,
}

fn idx(k: Kind) -> usize {
    k as usize
}

/// Ancestors of a path, nearest first, ending with "/".
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = Some(path);
    std::iter::from_fn(move || {
        let p = cur?;
        if p == "/" {
            cur = None;
            return None;
        }
        let i = p.rfind('/')?;
        let parent = if i == 0 { "/" } else { &p[..i] };
        cur = Some(parent);
        Some(parent)
    })
}

impl WatchTable {
    pub fn add(&mut self, session: SessionId, kind: Kind, path: &str) {
        self.tables[idx(kind)]
            .entry(path.to_owned())
            .or_default()
            .insert(session);
        if self
            .by_session
            .entry(session)
            .or_default()
            .insert((kind, path.to_owned()))
        {
            self.total += 1;
        }
    }

    fn remove_one(&mut self, session: SessionId, kind: Kind, path: &str) -> bool {
        let t = &mut self.tables[idx(kind)];
        let Some(set) = t.get_mut(path) else {
            return false;
        };
        let had = set.remove(&session);
        if set.is_empty() {
            t.remove(path);
        }
        if had {
            self.total -= 1;
            if let Some(s) = self.by_session.get_mut(&session) {
                s.remove(&(kind, path.to_owned()));
                if s.is_empty() {
                    self.by_session.remove(&session);
                }
            }
        }
        had
    }

    pub fn has(&self, session: SessionId, kind: Kind, path: &str) -> bool {
        self.tables[idx(kind)]
            .get(path)
            .is_some_and(|s| s.contains(&session))
    }

    fn kinds_of(watcher_type: i32) -> &'static [Kind] {
        match watcher_type {
            watcher_type::CHILDREN => &[Kind::Child],
            watcher_type::DATA => &[Kind::Data],
            watcher_type::PERSISTENT => &[Kind::Persistent],
            watcher_type::PERSISTENT_RECURSIVE => &[Kind::Recursive],
            _ => &[Kind::Data, Kind::Child, Kind::Persistent, Kind::Recursive],
        }
    }

    /// checkWatches: does the session hold a watch of this type on the path?
    pub fn check(&self, session: SessionId, watcher_type: i32, path: &str) -> bool {
        Self::kinds_of(watcher_type)
            .iter()
            .any(|&k| self.has(session, k, path))
    }

    /// removeWatches: true when something was removed.
    pub fn remove(&mut self, session: SessionId, watcher_type: i32, path: &str) -> bool {
        let mut any = false;
        for &k in Self::kinds_of(watcher_type) {
            any |= self.remove_one(session, k, path);
        }
        any
    }

    /// The connection of a session went away: its watches go with it.
    pub fn remove_session(&mut self, session: SessionId) {
        if let Some(all) = self.by_session.remove(&session) {
            self.total -= all.len();
            for (k, p) in all {
                let t = &mut self.tables[idx(k)];
                if let Some(set) = t.get_mut(&p) {
                    set.remove(&session);
                    if set.is_empty() {
                        t.remove(&p);
                    }
                }
            }
        }
    }

    /// Sessions to notify of `event_type` on `path`; fires (removes) one-shot watches.
    pub fn trigger(&mut self, event_type: i32, path: &str, out: &mut Vec<SessionId>) {
        out.clear();
        let mut fired: Vec<(Kind, SessionId)> = Vec::new();
        let one_shot: &[Kind] = match event_type {
            event::NODE_CREATED | event::NODE_DATA_CHANGED => &[Kind::Data],
            event::NODE_DELETED => &[Kind::Data, Kind::Child],
            event::NODE_CHILDREN_CHANGED => &[Kind::Child],
            _ => &[],
        };
        for &k in one_shot {
            if let Some(set) = self.tables[idx(k)].get(path) {
                fired.extend(set.iter().map(|&s| (k, s)));
            }
        }
        for (k, s) in &fired {
            self.remove_one(*s, *k, path);
        }
        out.extend(fired.iter().map(|&(_, s)| s));
        if let Some(set) = self.tables[idx(Kind::Persistent)].get(path) {
            out.extend(set.iter().copied());
        }
        if event_type != event::NODE_CHILDREN_CHANGED
            && !self.tables[idx(Kind::Recursive)].is_empty()
        {
            let rec = &self.tables[idx(Kind::Recursive)];
            for p in std::iter::once(path).chain(ancestors(path)) {
                if let Some(set) = rec.get(p) {
                    out.extend(set.iter().copied());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// (connections watching, paths watched, total watches), as `wchs` counts them.
    pub fn summary(&self) -> (usize, usize, usize) {
        let mut paths = HashSet::new();
        let mut total = 0;
        for t in &self.tables {
            for (p, s) in t {
                paths.insert(p.as_str());
                total += s.len();
            }
        }
        (self.by_session.len(), paths.len(), total)
    }

    pub fn by_session(&self) -> &HashMap<SessionId, BTreeSet<(Kind, String)>> {
        &self.by_session
    }

    pub fn count(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn one_shot_and_persistent() {
        let mut w = WatchTable::default();
        let mut out = vec![];
        w.add(1, Kind::Data, "/a");
        w.add(2, Kind::Persistent, "/a");
        w.add(3, Kind::Recursive, "/");
        w.trigger(event::NODE_DATA_CHANGED, "/a", &mut out);
        assert_eq!(out, vec![1, 2, 3]);
        w.trigger(event::NODE_DATA_CHANGED, "/a", &mut out);
        assert_eq!(out, vec![2, 3]);
        w.trigger(event::NODE_CHILDREN_CHANGED, "/a", &mut out);
        assert_eq!(out, vec![2]);
        assert_eq!(ancestors("/a/b").collect::<Vec<_>>(), vec!["/a", "/"]);
        w.remove_session(2);
        w.trigger(event::NODE_CHILDREN_CHANGED, "/a", &mut out);
        assert!(out.is_empty());
    }
}
