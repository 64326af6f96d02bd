//! Watch tables: one-shot data/exist and child watches, persistent and persistent-recursive
//! watches, keyed by session (a session has one connection at a time).
//!
//! Laid out as ZooKeeper's DataTree keeps them, because clients see the layout: a data
//! table (getData/exists watches) and a child table (getChildren watches); a persistent or
//! recursive watch (addWatch) is in both. checkWatches and removeWatches of type Data or
//! Children look at one table (removing the data half of a persistent watch leaves its
//! child half firing), and `wchs`/`wchc`/`wchp` show the data table only, while mntr's
//! `zk_watch_count` counts both.
//!
//! Owned by the writer thread. Holds: one event per (session, path, type) per trigger, even
//! when several watches of that session match; one-shot watches are gone once they fire;
//! persistent ones stay (also across the node's deletion) until removed or the connection
//! closes. Recursive watches fire Created/Deleted/DataChanged for the path and every
//! descendant, never ChildrenChanged. A session may hold a one-shot and a persistent watch
//! on one path at once (ZooKeeper 3.9; in 3.8 the one-shot replaced the persistent one,
//! losing its later events).

use crate::proto::ops::{event, watcher_type};
use crate::types::SessionId;
use std::collections::{BTreeSet, HashMap};

/// What a request asks to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// getData/exists: the data table.
    Data,
    /// getChildren: the child table.
    Child,
    /// addWatch PERSISTENT: both tables.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE: both tables.
    Recursive,
}

/// A session's watches on one path of one table, as bits.
const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

/// One of ZooKeeper's two watch managers.
#[derive(Default)]
struct Table {
    by_path: HashMap<String, HashMap<SessionId, u8>>,
    by_session: HashMap<SessionId, BTreeSet<String>>,
    /// (path, session) pairs held.
    pairs: usize,
    /// Pairs holding a recursive watch: when none, no event looks at ancestors.
    recursive: usize,
}

impl Table {
    fn add(&mut self, session: SessionId, path: &str, bit: u8) {
        let sessions = self.by_path.entry(path.to_owned()).or_default();
        let bits = sessions.entry(session).or_insert(0);
        if *bits == 0 {
            self.pairs += 1;
            self.by_session
                .entry(session)
                .or_default()
                .insert(path.to_owned());
        }
        if bit == RECURSIVE && *bits & RECURSIVE == 0 {
            self.recursive += 1;
        }
        *bits |= bit;
    }

    /// Takes `bits` off the session's watch on `path`: whether it had any of them.
    fn remove(&mut self, session: SessionId, path: &str, bits: u8) -> bool {
        let Some(sessions) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(held) = sessions.get_mut(&session) else {
            return false;
        };
        let had = *held & bits;
        if had & RECURSIVE != 0 {
            self.recursive -= 1;
        }
        *held &= !bits;
        if *held == 0 {
            sessions.remove(&session);
            if sessions.is_empty() {
                self.by_path.remove(path);
            }
            self.pairs -= 1;
            if let Some(paths) = self.by_session.get_mut(&session) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_session.remove(&session);
                }
            }
        }
        had != 0
    }

    fn remove_session(&mut self, session: SessionId) {
        let Some(paths) = self.by_session.remove(&session) else {
            return;
        };
        for p in paths {
            if let Some(sessions) = self.by_path.get_mut(&p) {
                if let Some(bits) = sessions.remove(&session) {
                    self.pairs -= 1;
                    if bits & RECURSIVE != 0 {
                        self.recursive -= 1;
                    }
                }
                if sessions.is_empty() {
                    self.by_path.remove(&p);
                }
            }
        }
    }

    /// Sessions this table notifies of an event on `path` (a ChildrenChanged one when
    /// `children`), as ZooKeeper's WatchManager.triggerWatch: every watch on the path but
    /// a recursive one for ChildrenChanged, and recursive watches on its ancestors for
    /// the other events. One-shot watches fire once.
    fn trigger(&mut self, path: &str, children: bool, out: &mut Vec<SessionId>) {
        let fires = if children {
            STANDARD | PERSISTENT
        } else {
            STANDARD | PERSISTENT | RECURSIVE
        };
        let mut spent: Vec<SessionId> = Vec::new();
        if let Some(sessions) = self.by_path.get(path) {
            for (&s, &bits) in sessions {
                if bits & fires != 0 {
                    out.push(s);
                    if bits & STANDARD != 0 {
                        spent.push(s);
                    }
                }
            }
        }
        for s in spent {
            self.remove(s, path, STANDARD);
        }
        if !children && self.recursive > 0 {
            for p in ancestors(path) {
                if let Some(sessions) = self.by_path.get(p) {
                    out.extend(
                        sessions
                            .iter()
                            .filter(|(_, &b)| b & RECURSIVE != 0)
                            .map(|(&s, _)| s),
                    );
                }
            }
        }
    }
}

#[derive(Default)]
pub struct WatchTable {
    data: Table,
    child: Table,
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
        match kind {
            Kind::Data => self.data.add(session, path, STANDARD),
            Kind::Child => self.child.add(session, path, STANDARD),
            Kind::Persistent => {
                self.data.add(session, path, PERSISTENT);
                self.child.add(session, path, PERSISTENT);
            }
            Kind::Recursive => {
                self.data.add(session, path, RECURSIVE);
                self.child.add(session, path, RECURSIVE);
            }
        }
    }

    /// checkWatches; `None` for a watcher type ZooKeeper does not know (its
    /// `WatcherType.fromInt` throws: MarshallingError). Children, Data and Any are
    /// ZooKeeper 3.8's: whether the table holds a watch on the path at all, from any
    /// session, as its WatchManager.containsWatcher answers. Persistent (4) and
    /// PersistentRecursive (5) are 3.9's: whether this session holds that watch.
    pub fn check(&self, session: SessionId, watcher_type: i32, path: &str) -> Option<bool> {
        let mode = |bit: u8| {
            self.data
                .by_path
                .get(path)
                .and_then(|s| s.get(&session))
                .is_some_and(|b| b & bit != 0)
        };
        Some(match watcher_type {
            watcher_type::CHILDREN => self.child.by_path.contains_key(path),
            watcher_type::DATA => self.data.by_path.contains_key(path),
            watcher_type::ANY => {
                self.child.by_path.contains_key(path) || self.data.by_path.contains_key(path)
            }
            watcher_type::PERSISTENT => mode(PERSISTENT),
            watcher_type::PERSISTENT_RECURSIVE => mode(RECURSIVE),
            _ => return None,
        })
    }

    /// removeWatches: whether something was removed; `None` for an unknown watcher type.
    /// Children or Data takes the session's watch on the path out of that table (a
    /// persistent watch's half), Any out of both; Persistent and PersistentRecursive
    /// (3.9) take that watch out of both.
    pub fn remove(&mut self, session: SessionId, watcher_type: i32, path: &str) -> Option<bool> {
        let all = STANDARD | PERSISTENT | RECURSIVE;
        Some(match watcher_type {
            watcher_type::CHILDREN => self.child.remove(session, path, all),
            watcher_type::DATA => self.data.remove(session, path, all),
            watcher_type::ANY => {
                let c = self.child.remove(session, path, all);
                self.data.remove(session, path, all) | c
            }
            watcher_type::PERSISTENT => {
                let c = self.child.remove(session, path, PERSISTENT);
                self.data.remove(session, path, PERSISTENT) | c
            }
            watcher_type::PERSISTENT_RECURSIVE => {
                let c = self.child.remove(session, path, RECURSIVE);
                self.data.remove(session, path, RECURSIVE) | c
            }
            _ => return None,
        })
    }

    /// The connection of a session went away: its watches go with it.
    pub fn remove_session(&mut self, session: SessionId) {
        self.data.remove_session(session);
        self.child.remove_session(session);
    }

    /// Sessions to notify of `event_type` on `path`; fires (removes) one-shot watches.
    /// As ZooKeeper's DataTree: Created and DataChanged from the data table, Deleted from
    /// both, ChildrenChanged (on the parent) from the child table.
    pub fn trigger(&mut self, event_type: i32, path: &str, out: &mut Vec<SessionId>) {
        out.clear();
        match event_type {
            event::NODE_CREATED | event::NODE_DATA_CHANGED => self.data.trigger(path, false, out),
            event::NODE_DELETED => {
                self.data.trigger(path, false, out);
                self.child.trigger(path, false, out);
            }
            event::NODE_CHILDREN_CHANGED => self.child.trigger(path, true, out),
            _ => {}
        }
        out.sort_unstable();
        out.dedup();
    }

    /// (sessions watching, paths watched, watches) of the data table, as `wchs` counts
    /// them (ZooKeeper's dumpWatchesSummary shows its data watches only).
    pub fn summary(&self) -> (usize, usize, usize) {
        (
            self.data.by_session.len(),
            self.data.by_path.len(),
            self.data.pairs,
        )
    }

    /// The data table by session, as `wchc` and `wchp` show it.
    pub fn data_by_session(&self) -> impl Iterator<Item = (SessionId, &BTreeSet<String>)> {
        self.data.by_session.iter().map(|(s, p)| (*s, p))
    }

    /// Watches in both tables: mntr's `zk_watch_count`.
    pub fn count(&self) -> usize {
        self.data.pairs + self.child.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(w: &mut WatchTable, e: i32, path: &str) -> Vec<SessionId> {
        let mut out = vec![];
        w.trigger(e, path, &mut out);
        out
    }

    #[test]
    fn one_shot_and_persistent() {
        let mut w = WatchTable::default();
        w.add(1, Kind::Data, "/a");
        w.add(2, Kind::Persistent, "/a");
        w.add(3, Kind::Recursive, "/");
        assert_eq!(fired(&mut w, event::NODE_DATA_CHANGED, "/a"), vec![1, 2, 3]);
        assert_eq!(fired(&mut w, event::NODE_DATA_CHANGED, "/a"), vec![2, 3]);
        assert_eq!(fired(&mut w, event::NODE_CHILDREN_CHANGED, "/a"), vec![2]);
        assert_eq!(ancestors("/a/b").collect::<Vec<_>>(), vec!["/a", "/"]);
        w.remove_session(2);
        assert!(fired(&mut w, event::NODE_CHILDREN_CHANGED, "/a").is_empty());
        assert_eq!(fired(&mut w, event::NODE_DELETED, "/a/b"), vec![3]);
    }

    #[test]
    fn halves_of_a_persistent_watch_as_in_zookeeper() {
        let mut w = WatchTable::default();
        w.add(7, Kind::Persistent, "/p");
        // 3.8: Data and Children both find it; any session's watch counts.
        assert_eq!(w.check(7, watcher_type::DATA, "/p"), Some(true));
        assert_eq!(w.check(7, watcher_type::CHILDREN, "/p"), Some(true));
        assert_eq!(w.check(8, watcher_type::ANY, "/p"), Some(true));
        assert_eq!(w.check(7, 9, "/p"), None);
        assert_eq!(w.count(), 2);
        assert_eq!(w.summary(), (1, 1, 1));
        // Removing the data half leaves child events (and deletion) firing.
        assert_eq!(w.remove(7, watcher_type::DATA, "/p"), Some(true));
        assert!(fired(&mut w, event::NODE_DATA_CHANGED, "/p").is_empty());
        assert_eq!(fired(&mut w, event::NODE_CHILDREN_CHANGED, "/p"), vec![7]);
        assert_eq!(fired(&mut w, event::NODE_DELETED, "/p"), vec![7]);
        assert_eq!(w.remove(7, watcher_type::DATA, "/p"), Some(false));
        assert_eq!(w.remove(7, watcher_type::CHILDREN, "/p"), Some(true));
        assert_eq!(w.count(), 0);
        // A recursive watch: never ChildrenChanged; 3.9's type 5 removes it whole.
        w.add(9, Kind::Recursive, "/r");
        assert!(fired(&mut w, event::NODE_CHILDREN_CHANGED, "/r").is_empty());
        assert_eq!(fired(&mut w, event::NODE_CREATED, "/r/x/y"), vec![9]);
        assert_eq!(
            w.remove(9, watcher_type::PERSISTENT_RECURSIVE, "/r"),
            Some(true)
        );
        assert_eq!(w.count(), 0);
        assert!(fired(&mut w, event::NODE_CREATED, "/r/x").is_empty());
    }

    #[test]
    fn a_one_shot_beside_a_persistent_watch_fires_once_and_the_persistent_stays() {
        let mut w = WatchTable::default();
        w.add(1, Kind::Persistent, "/a");
        w.add(1, Kind::Data, "/a");
        assert_eq!(w.count(), 2, "one pair per table");
        assert_eq!(fired(&mut w, event::NODE_DATA_CHANGED, "/a"), vec![1]);
        assert_eq!(fired(&mut w, event::NODE_DATA_CHANGED, "/a"), vec![1]);
        assert_eq!(w.count(), 2);
    }
}
