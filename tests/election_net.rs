//! Fast leader election over real sockets on loopback: servers on 127.0.0.1 ports elect
//! the server with the best (epoch, zxid, id), one connection per pair.

use paddock::quorum::ElectionNet;
use paddock::zab::election::PeerState;
use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// ZooKeeper's default cnxTimeout.
const CNX_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs an election among servers 1..=n (`zxid_of(id)`), each on its own thread;
/// returns each server's decision.
fn elect(n: i64, zxid_of: fn(i64) -> i64) -> HashMap<i64, (PeerState, i64)> {
    let listeners: Vec<(i64, TcpListener)> = (1..=n)
        .map(|id| (id, TcpListener::bind("127.0.0.1:0").unwrap()))
        .collect();
    let addrs: HashMap<i64, std::net::SocketAddr> = listeners
        .iter()
        .map(|(id, l)| (*id, l.local_addr().unwrap()))
        .collect();
    let voters: Vec<i64> = (1..=n).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    // The highest id first, a moment ahead: with all servers up together FLE elects the
    // best vote; a server that starts late finds a quorum already decided without it.
    let handles: Vec<_> = listeners
        .into_iter()
        .rev()
        .enumerate()
        .map(|(i, (id, l))| {
            if i == 1 {
                std::thread::sleep(Duration::from_millis(100));
            }
            let peers = addrs.clone();
            let voters = voters.clone();
            std::thread::spawn(move || {
                let net =
                    ElectionNet::start(id, l, peers, b"version=0".to_vec(), CNX_TIMEOUT).unwrap();
                let d = net.run_election(
                    voters,
                    vec![],
                    zxid_of(id),
                    1,
                    deadline,
                    Duration::from_millis(1500),
                );
                (id, d)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            let (id, d) = h.join().unwrap();
            let (state, vote) = d.unwrap_or_else(|| panic!("server {id} did not decide"));
            (id, (state, vote.leader))
        })
        .collect()
}

fn assert_leader(d: &HashMap<i64, (PeerState, i64)>, leader: i64) {
    for (id, (state, l)) in d {
        assert_eq!(*l, leader, "server {id}: {d:?}");
        let want = if *id == leader {
            PeerState::Leading
        } else {
            PeerState::Following
        };
        assert_eq!(*state, want, "server {id}: {d:?}");
    }
}

#[test]
fn three_servers_with_equal_zxids_elect_the_highest_id() {
    assert_leader(&elect(3, |_| 5), 3);
}

#[test]
fn five_servers_elect_the_highest_zxid() {
    assert_leader(&elect(5, |id| if id == 2 { 9 } else { 4 }), 2);
}

/// A lower id that dials in is closed and dialled back at once, before any election
/// runs on the higher side (whose own dial rounds run only while it elects): a server
/// that starts is heard by the higher ids within a round trip.
#[test]
fn a_lower_id_that_dials_in_is_dialled_back() {
    use paddock::zab::wire;
    use std::io::{Read, Write};
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr2 = l.local_addr().unwrap();
    let peers = HashMap::from([(1, fake.local_addr().unwrap()), (2, addr2)]);
    let _net = ElectionNet::start(2, l, peers, b"version=0".to_vec(), CNX_TIMEOUT).unwrap();

    let mut in1 = std::net::TcpStream::connect(addr2).unwrap();
    in1.write_all(&wire::encode_initial(
        1,
        &fake.local_addr().unwrap().to_string(),
    ))
    .unwrap();
    // Server 2 keeps only connections it dialled: ours is closed...
    in1.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 64];
    assert_eq!(
        in1.read(&mut b).unwrap(),
        0,
        "server 2 kept a lower id's dial"
    );
    // ...and it dials us back, saying it is server 2.
    fake.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut back = loop {
        match fake.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "server 2 never dialled back");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    back.set_nonblocking(false).unwrap();
    back.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let initial = loop {
        if let Some((i, _)) = wire::decode_initial(&got).unwrap() {
            break i;
        }
        let k = back.read(&mut b).unwrap();
        assert!(k > 0, "server 2 closed its dial before saying who it is");
        got.extend_from_slice(&b[..k]);
    };
    assert_eq!(initial.sid, 2);
}
