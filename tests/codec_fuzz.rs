//! Property tests of the jute decoder and framing: random, truncated and oversize input
//! never panics, and whatever decodes re-encodes to something that decodes the same.
//! Then the same kind of garbage sent to a live server: it closes that connection only.

use crate::harness::*;
use paddock::proto::frame::{next_frame, Frame};
use paddock::proto::records::{ConnectRequest, Request};
use paddock::txn::decode_record;
use proptest::prelude::*;
use std::io::Write;

const OPS: &[i32] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 100, 101, 103, 104, 105,
    106, 107, -11, 999,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bodies_never_panic(op in prop::sample::select(OPS), body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::decode(op, &body);
        let _ = ConnectRequest::decode(&body);
        let _ = decode_record(&body);
    }

    #[test]
    fn truncated_valid_requests_are_errors_not_panics(path in "/[a-z]{1,20}", data in prop::collection::vec(any::<u8>(), 0..64), cut in 0usize..200) {
        let mut w = paddock::proto::Writer::new();
        w.string(&path).buffer(&data).i32(-1);
        let full = w.buf.clone();
        let ok = matches!(Request::decode(5, &full), Ok(Request::SetData { .. }));
        prop_assert!(ok);
        let cut = cut.min(full.len());
        if cut < full.len() {
            prop_assert!(Request::decode(5, &full[..cut]).is_err());
        }
    }

    #[test]
    fn framing_respects_the_limit(bytes in prop::collection::vec(any::<u8>(), 0..64), max in 0usize..2048) {
        match next_frame(&bytes, max) {
            Frame::Partial => prop_assert!(bytes.len() < 4 || (i32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize + 4) > bytes.len()),
            Frame::Complete { start, end } => { prop_assert!(end <= bytes.len()); prop_assert!(end - start <= max); }
            Frame::BadLength(n) => prop_assert!(n < 0 || n as usize > max),
        }
    }
}

#[test]
fn garbage_on_the_wire_closes_only_that_connection() {
    let s = Server::start("");
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut survivor = Raw::connect(&s);
    for round in 0..60 {
        let mut r = Raw::connect(&s);
        // A frame with a random opcode and random body, or raw random bytes.
        let n = (next() % 200) as usize;
        let body: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        if round % 2 == 0 {
            let op = OPS[(next() % OPS.len() as u64) as usize];
            r.send(round + 1, op, &body);
        } else {
            let _ = r.sock.write_all(&body);
        }
        let _ = r.sock.shutdown(std::net::Shutdown::Write);
        drop(r);
    }
    // The server and the other session are fine.
    survivor.send(1, 11, &[]);
    let (xid, _, err, _) = survivor.reply().unwrap();
    assert_eq!((xid, err), (-2, 0));
    assert_eq!(four(&s, "ruok"), "imok");
}
