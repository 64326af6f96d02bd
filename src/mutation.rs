//! Mutations: bugs fixed once, put back on purpose under the simulator, so that a sweep
//! of seeds shows it would catch them again (issue 15). Each is a switch read at the
//! place of its fix. The switches can be set only in test builds of the library, where
//! the simulator runs (`cargo test --lib`, testing/server.rs); in every other build
//! `active` is a constant `false` and the compiler removes the switch. `published` is the
//! simulator's view of every tree state readers may see (empty outside test builds).

/// A bug that a simulated run can put back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mutation {
    /// A write is answered when it is appended, before its sync (invariant 2): a crash
    /// loses a write its client was told is done.
    AnswerBeforeSync,
    /// A close deletes only the session's applied ephemerals, not those a txn still in
    /// flight creates (#6): such a node commits with a dead owner and never goes.
    OrphanEphemerals,
    /// A request the writer answers without a txn does not wait for its session's
    /// writes in flight (fixed in e120f22): replies leave out of xid order.
    NoSessionOrder,
    /// A write the log had no room for is answered OK (the disk-full error ignored): the
    /// write is in no log and no tree.
    IgnoreFullDisk,
    /// The close's reply is dropped: the connection closes first (#6's lost reply after
    /// close).
    CloseBeforeReply,
    /// A learner takes the new epoch (NEWLEADER) before the history its leader synced is
    /// durable (ZOOKEEPER-4643; found by the ensemble simulation): a crash between them
    /// lets it win an election with a log that lacks committed txns.
    EpochBeforeHistory,
    /// A txn's changes are published one by one, each in its own window, instead of in
    /// one (#6's partial publish): a reader can see part of a multi.
    PartialPublish,
    /// Watch events are checked against the auth a session first had at the writer,
    /// not its latest (#6's stale auth in notify): a session that authenticated later
    /// misses the events of nodes only that auth may read.
    StaleAuth,
}

impl Mutation {
    pub const ALL: [Mutation; 8] = [
        Mutation::AnswerBeforeSync,
        Mutation::OrphanEphemerals,
        Mutation::NoSessionOrder,
        Mutation::IgnoreFullDisk,
        Mutation::CloseBeforeReply,
        Mutation::EpochBeforeHistory,
        Mutation::PartialPublish,
        Mutation::StaleAuth,
    ];

    /// The servers a run needs to show it: one, or an ensemble of three.
    pub fn members(self) -> usize {
        match self {
            Mutation::EpochBeforeHistory => 3,
            _ => 1,
        }
    }
}

#[cfg(test)]
thread_local! {
    static ACTIVE: std::cell::Cell<Option<Mutation>> = const { std::cell::Cell::new(None) };
}

/// Whether `m` is put back on this thread (test builds only).
#[inline(always)]
pub fn active(m: Mutation) -> bool {
    #[cfg(test)]
    {
        ACTIVE.with(|a| a.get() == Some(m))
    }
    #[cfg(not(test))]
    {
        let _ = m;
        false
    }
}

/// What the simulator runs on each tree state readers may see.
#[cfg(test)]
pub type Observer = Box<dyn Fn(&crate::tree::DataTree)>;

#[cfg(test)]
thread_local! {
    static OBSERVER: std::cell::RefCell<Option<Observer>> = const { std::cell::RefCell::new(None) };
}

/// A publish window of `tree` just closed: what readers may see now. The simulator
/// checks each such state (test builds only; elsewhere this is empty).
#[inline(always)]
pub fn published(tree: &crate::tree::DataTree) {
    #[cfg(test)]
    OBSERVER.with(|o| {
        if let Some(f) = &*o.borrow() {
            f(tree)
        }
    });
    #[cfg(not(test))]
    let _ = tree;
}

/// Runs `f` on every tree state readers of this thread's servers may see, until set
/// again (test builds only).
#[cfg(test)]
pub fn observe(f: Option<Observer>) {
    OBSERVER.with(|o| *o.borrow_mut() = f);
}

/// Puts `m` back on this thread until the guard is dropped.
#[cfg(test)]
pub fn put_back(m: Option<Mutation>) -> impl Drop {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.set(None));
        }
    }
    ACTIVE.with(|a| a.set(m));
    Guard
}
