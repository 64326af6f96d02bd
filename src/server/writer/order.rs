//! Session order at the writer (invariant 3). A request the writer answers without a txn
//! of its own (a read that sets a watch, sync, setWatches, a plain read behind writes)
//! must not overtake an earlier request of its session that the writer still holds: a
//! write waiting for its group commit or its quorum, or one a learner forwarded. Each
//! such earlier request takes a ticket; a later request of the session waits on the
//! newest ticket and is answered right after it, from the tree as it then stands.
//!
//! No request waits on the writer's sync for this: only on its own session's requests.

use crate::tree::FastMap;
use crate::types::SessionId;

/// Tickets of requests in flight at the writer, and what waits behind them.
pub struct SessionOrder<T> {
    next: u64,
    /// Each session's newest ticket not yet answered.
    newest: FastMap<SessionId, u64>,
    /// What waits behind each ticket, in arrival order.
    behind: FastMap<u64, Vec<T>>,
}

impl<T> Default for SessionOrder<T> {
    fn default() -> Self {
        SessionOrder {
            next: 0,
            newest: FastMap::default(),
            behind: FastMap::default(),
        }
    }
}

/// No ticket: a request nobody waits behind (the server's own txns, a learner's).
pub const NO_TICKET: u64 = 0;

impl<T> SessionOrder<T> {
    /// A request of `session` that will be answered later: the session's later requests
    /// wait behind it.
    pub fn ticket(&mut self, session: SessionId) -> u64 {
        self.next += 1;
        self.newest.insert(session, self.next);
        self.next
    }

    /// `item` of `session` back if nothing of its session is in flight (answer it now);
    /// else it waits behind the session's newest ticket.
    pub fn hold(&mut self, session: SessionId, item: T) -> Option<T> {
        match self.newest.get(&session) {
            Some(t) => {
                self.behind.entry(*t).or_default().push(item);
                None
            }
            None => Some(item),
        }
    }

    /// Ticket `ticket` of `session` is answered: what waited behind it, to answer now.
    pub fn answered(&mut self, session: SessionId, ticket: u64) -> Vec<T> {
        if ticket == NO_TICKET {
            return Vec::new();
        }
        if self.newest.get(&session) == Some(&ticket) {
            self.newest.remove(&session);
        }
        if self.behind.is_empty() {
            return Vec::new();
        }
        self.behind.remove(&ticket).unwrap_or_default()
    }

    /// Forgets every ticket and what waits (the term ended: every connection closes).
    pub fn clear(&mut self) {
        self.newest.clear();
        self.behind.clear();
    }

    /// Requests waiting behind others.
    pub fn waiting(&self) -> usize {
        self.behind.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_waits_for_its_sessions_newest_ticket_only() {
        let mut o = SessionOrder::default();
        assert_eq!(o.hold(1, "free"), Some("free"), "nothing in flight");
        let w1 = o.ticket(1);
        assert_eq!(o.hold(1, "r1"), None);
        assert_eq!(o.hold(2, "other session"), Some("other session"));
        let w2 = o.ticket(1);
        assert_eq!(o.hold(1, "r2"), None);
        assert_eq!(o.waiting(), 2);
        assert_eq!(o.answered(1, w1), vec!["r1"]);
        // w2 is still in flight: a new request waits behind it.
        assert_eq!(o.hold(1, "r3"), None);
        assert_eq!(o.answered(1, w2), vec!["r2", "r3"]);
        assert_eq!(o.hold(1, "after"), Some("after"));
        assert!(o.answered(1, NO_TICKET).is_empty());
        assert_eq!(o.waiting(), 0);
    }

    #[test]
    fn a_reused_xid_does_not_confuse_the_order() {
        // Tickets are the writer's own numbers: a client that reuses xids cannot make a
        // later request overtake an earlier one.
        let mut o = SessionOrder::default();
        let a = o.ticket(7);
        let b = o.ticket(7);
        assert_eq!(o.hold(7, "behind b"), None);
        assert!(o.answered(7, a).is_empty());
        assert_eq!(o.hold(7, "still behind b"), None);
        assert_eq!(o.answered(7, b), vec!["behind b", "still behind b"]);
    }
}
