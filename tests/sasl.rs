//! Issue 16: SASL DIGEST-MD5 on the client port (JAAS `Server` section), the `sasl` id and
//! its ACLs, the super user, and enforced authentication, over raw sockets against the
//! real server. The client side of DIGEST-MD5 here is written from RFC 2831; the interop
//! suite runs the JDK's and kazoo's.

use crate::harness::{create_body_acl, jute_string, Raw, Server};
use md5::{Digest, Md5};
use std::time::{Duration, Instant};

const SASL: i32 = 102;
const AUTH_FAILED: i32 = -115;
const REQUIRE_SASL: i32 = -124;
const SASL_PROVIDER: &str =
    "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn md5(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

fn sasl_body(token: &[u8]) -> Vec<u8> {
    let mut b = (token.len() as i32).to_be_bytes().to_vec();
    b.extend_from_slice(token);
    b
}

/// (err, token) of a SASL reply.
fn sasl_call(r: &mut Raw, xid: i32, token: &[u8]) -> Option<(i32, Option<Vec<u8>>)> {
    r.send(xid, SASL, &sasl_body(token));
    let (rxid, zxid, err, body) = r.reply()?;
    assert_eq!((rxid, zxid), (xid, 0), "SASL replies carry zxid 0");
    let n = i32::from_be_bytes(body[0..4].try_into().unwrap());
    Some((err, (n >= 0).then(|| body[4..4 + n as usize].to_vec())))
}

/// The JDK client's digest-response to `challenge` (with authzid = user, as ZooKeeper's
/// Java client sends it).
fn digest_response(challenge: &str, user: &str, pw: &str) -> String {
    let nonce = challenge
        .split(',')
        .find_map(|d| d.strip_prefix("nonce="))
        .unwrap()
        .trim_matches('"');
    let realm = "zk-sasl-md5";
    let uri = "zookeeper/zk-sasl-md5";
    let cnonce = "cl1ent-n0nce";
    let mut a1 = md5(&[format!("{user}:{realm}:{pw}").as_bytes()]);
    a1.extend_from_slice(format!(":{nonce}:{cnonce}:{user}").as_bytes());
    let ha1 = hex(&md5(&[&a1]));
    let ha2 = hex(&md5(&[format!("AUTHENTICATE:{uri}").as_bytes()]));
    let resp = hex(&md5(&[format!(
        "{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"
    )
    .as_bytes()]));
    format!(
        "charset=utf-8,username=\"{user}\",realm=\"{realm}\",nonce=\"{nonce}\",nc=00000001,cnonce=\"{cnonce}\",digest-uri=\"{uri}\",maxbuf=65536,response={resp},qop=auth,authzid=\"{user}\""
    )
}

/// Runs DIGEST-MD5 as `user`; Ok(rspauth) or Err(the failing reply's err code).
fn login(r: &mut Raw, user: &str, pw: &str) -> Result<String, i32> {
    let (err, ch) = sasl_call(r, 1, b"").expect("a challenge");
    assert_eq!(err, 0);
    let ch = String::from_utf8(ch.expect("a challenge token")).unwrap();
    assert!(ch.starts_with("realm=\"zk-sasl-md5\",nonce=\""), "{ch}");
    let (err, tok) = sasl_call(r, 2, digest_response(&ch, user, pw).as_bytes()).expect("an answer");
    if err != 0 {
        assert_eq!(tok, None, "a failure carries a null token");
        return Err(err);
    }
    Ok(String::from_utf8(tok.unwrap()).unwrap())
}

fn who_am_i(r: &mut Raw, xid: i32) -> Vec<(String, String)> {
    r.send(xid, 107, &[]);
    let (_, _, err, body) = r.reply().unwrap();
    assert_eq!(err, 0);
    let mut out = Vec::new();
    let n = i32::from_be_bytes(body[0..4].try_into().unwrap());
    let mut at = 4;
    let mut s = || {
        let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
        let v = String::from_utf8_lossy(&body[at + 4..at + 4 + len]).into_owned();
        at += 4 + len;
        v
    };
    for _ in 0..n {
        let scheme = s();
        out.push((scheme, s()));
    }
    out
}

fn get_data(r: &mut Raw, xid: i32, path: &str) -> i32 {
    let mut b = jute_string(path);
    b.push(0);
    r.send(xid, 4, &b);
    r.reply().map(|x| x.2).unwrap_or(i32::MIN)
}

fn sasl_server(extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let jaas = dir.path().join("jaas.conf");
    std::fs::write(
        &jaas,
        "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
         user_super=\"adminsecret\"\n  user_bob=\"bob-pw\"\n  user_carol=\"carol-pw\";\n};\n",
    )
    .unwrap();
    let s = Server::start(&format!(
        "paddock.jaasConfig={}\n{SASL_PROVIDER}\n{extra}",
        jaas.display()
    ));
    // The JAAS file is read at start-up; the directory may go.
    drop(dir);
    s
}

#[test]
fn digest_md5_gives_a_sasl_id_that_acls_and_whoami_see() {
    let s = sasl_server("superUser=super");
    let mut bob = Raw::connect(&s);
    let rspauth = login(&mut bob, "bob", "bob-pw").unwrap();
    assert!(
        rspauth.starts_with("rspauth=") && rspauth.len() == 40,
        "{rspauth}"
    );
    assert!(who_am_i(&mut bob, 3).contains(&("sasl".into(), "bob".into())));
    bob.send(4, 1, &create_body_acl("/bobs", b"x", "sasl", "bob", 0));
    assert_eq!(bob.reply().unwrap().2, 0);
    assert_eq!(get_data(&mut bob, 5, "/bobs"), 0);
    let mut carol = Raw::connect(&s);
    login(&mut carol, "carol", "carol-pw").unwrap();
    assert_eq!(get_data(&mut carol, 3, "/bobs"), -102, "carol is not bob");
    // superUser=super: the sasl super user reads anything.
    let mut admin = Raw::connect(&s);
    login(&mut admin, "super", "adminsecret").unwrap();
    let ids = who_am_i(&mut admin, 3);
    assert!(ids.contains(&("super".into(), "".into())), "{ids:?}");
    assert_eq!(get_data(&mut admin, 4, "/bobs"), 0);
    // An unauthenticated session: NoAuth, not a closed connection (nothing enforced).
    let mut anon = Raw::connect(&s);
    assert_eq!(get_data(&mut anon, 1, "/bobs"), -102);
    // A sasl ACL id is valid now that the SASL provider is registered; an `auth` ACL
    // takes the sasl id.
    bob.send(6, 1, &create_body_acl("/bobs2", b"", "auth", "", 0));
    assert_eq!(bob.reply().unwrap().2, 0);
    assert_eq!(get_data(&mut carol, 4, "/bobs2"), -102);
    assert_eq!(get_data(&mut bob, 7, "/bobs2"), 0);
}

#[test]
fn a_failed_login_is_answered_auth_failed_then_closed_and_the_session_lives() {
    let s = sasl_server("");
    let (mut r, passwd, _) = Raw::try_session(&s.addr(), 0, &[], 4000).unwrap();
    let session = r.session;
    assert_eq!(login(&mut r, "bob", "wrong"), Err(AUTH_FAILED));
    assert!(r.closed(), "the connection closes after AuthFailed");
    // The session is not closed by a failed login (ZooKeeper leaves it to expire).
    let (mut again, _, _) = Raw::try_session(&s.addr(), session, &passwd, 4000)
        .expect("the session survives a failed login");
    assert_eq!(again.session, session);
    login(&mut again, "bob", "bob-pw").unwrap();
    // Unknown users fail alike; a token after completion fails; an oversize one too.
    let mut u = Raw::connect(&s);
    assert_eq!(login(&mut u, "mallory", "bob-pw"), Err(AUTH_FAILED));
    let (err, _) = sasl_call(&mut again, 9, b"one more").unwrap();
    assert_eq!(err, AUTH_FAILED);
    let mut big = Raw::connect(&s);
    sasl_call(&mut big, 1, b"").unwrap();
    assert_eq!(
        sasl_call(&mut big, 2, &vec![b'x'; 5000]).unwrap().0,
        AUTH_FAILED
    );
    // 1 MB: past jute.maxbuffer, the frame itself is refused.
    let mut huge = Raw::connect(&s);
    let mut body = 1i32.to_be_bytes().to_vec();
    body.extend(SASL.to_be_bytes());
    body.extend(sasl_body(&vec![0u8; 1 << 20]));
    // The server may close before it has all of it: the write may fail.
    let _ = std::io::Write::write_all(&mut huge.sock, &crate::harness::frame(&body));
    assert!(huge.reply().is_none(), "a 1 MB token is refused");
    assert!(s.logged("Len error"), "{}", s.log_text());
    assert!(!s.log_text().contains("bob-pw"), "a password was logged");
}

/// Wrong passwords in a loop: every one refused, the server and other sessions fine,
/// the log rate-limited and free of secrets.
#[test]
fn wrong_passwords_in_a_loop_harm_nobody() {
    let s = sasl_server("");
    let mut good = Raw::connect(&s);
    login(&mut good, "bob", "bob-pw").unwrap();
    let start = Instant::now();
    let mut refused = 0;
    for i in 0..200 {
        let mut r = Raw::connect(&s);
        if login(&mut r, "bob", &format!("guess-{i}")) == Err(AUTH_FAILED) {
            refused += 1;
        }
    }
    assert_eq!(refused, 200);
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(get_data(&mut good, 3, "/zookeeper"), 0);
    let log = s.log_text();
    let lines = log.matches("SASL authentication failed").count();
    // Rate-limited: some lines, far fewer than failures (the window and reactor count
    // set how many exactly).
    assert!((1..100).contains(&lines), "{lines} lines for 200 failures");
    assert!(!log.contains("guess-") && !log.contains("bob-pw"), "{log}");
    assert!(
        crate::harness::four(&s, "mntr").contains("zk_auth_failed_count\t200"),
        "{}",
        crate::harness::four(&s, "mntr")
    );
}

/// sessionRequireClientSASLAuth / enforce.auth: every op but auth and sasl (pings too)
/// before authenticating gets -124 and the connection closes; after, all runs.
#[test]
fn enforced_authentication_refuses_everything_until_authenticated() {
    let s = sasl_server("sessionRequireClientSASLAuth=true");
    let mut r = Raw::connect(&s);
    assert_eq!(get_data(&mut r, 1, "/zookeeper"), REQUIRE_SASL);
    assert!(r.closed());
    let mut p = Raw::connect(&s);
    p.send(-2, 11, &[]);
    let (xid, _, err, body) = p.reply().unwrap();
    assert_eq!((xid, err, body.len()), (-2, REQUIRE_SASL, 0));
    let mut ok = Raw::connect(&s);
    login(&mut ok, "bob", "bob-pw").unwrap();
    assert_eq!(get_data(&mut ok, 3, "/zookeeper"), 0);
    // A failed login under enforcement says -124.
    let mut bad = Raw::connect(&s);
    assert_eq!(login(&mut bad, "bob", "nope"), Err(REQUIRE_SASL));

    // enforce.auth with digest: addauth passes the gate.
    let d = Server::start("enforce.auth.enabled=true\nenforce.auth.schemes=digest");
    let mut r = Raw::connect(&d);
    let mut auth = 0i32.to_be_bytes().to_vec();
    auth.extend(jute_string("digest"));
    auth.extend(sasl_body(b"alice:secret"));
    r.send(-4, 100, &auth);
    assert_eq!(r.reply().unwrap().2, 0);
    assert_eq!(get_data(&mut r, 1, "/zookeeper"), 0);
    let mut n = Raw::connect(&d);
    assert_eq!(get_data(&mut n, 1, "/zookeeper"), REQUIRE_SASL);
}

#[test]
fn sasl_settings_that_cannot_work_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let krb = dir.path().join("krb.conf");
    std::fs::write(
        &krb,
        "Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true principal=\"zookeeper/localhost@EXAMPLE.COM\"; };",
    )
    .unwrap();
    let bad_syntax = dir.path().join("bad.conf");
    std::fs::write(
        &bad_syntax,
        "Server {\n  X required\n  user_a=\"secret-pw\"\n",
    )
    .unwrap();
    for (extra, why) in [
        (
            "sessionRequireClientSASLAuth=true".to_owned(),
            "no authentication provider for \"sasl\"",
        ),
        (
            "enforce.auth.enabled=true\nenforce.auth.schemes=x509".to_owned(),
            "no authentication provider for \"x509\"",
        ),
        ("enforce.auth.enabled=true".to_owned(), "names no scheme"),
        (
            format!("paddock.jaasConfig={}", krb.display()),
            "Kerberos (GSSAPI) on the client port is not supported yet",
        ),
        (
            format!("paddock.jaasConfig={}", bad_syntax.display()),
            "end of file",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\n{extra}\n",
                d.path().join("data").display()
            ),
        )
        .unwrap();
        let (code, err) = crate::harness::start_failing(&cfg);
        assert_eq!(code, Some(1), "{extra}: {err}");
        assert!(err.contains(why), "{extra}: {err}");
        assert!(!err.contains("secret-pw"), "{err}");
    }
}
