//! The server side of SASL DIGEST-MD5 (RFC 2831) as ZooKeeper's JDK SaslServer runs it:
//! realm and server name `zk-sasl-md5`, digest-uri `zookeeper/zk-sasl-md5`, qop `auth`
//! only, algorithm md5-sess. Two round trips: any first token gets the challenge; the
//! client's digest-response gets `rspauth=...` and the exchange is complete.
//!
//! Pure: the nonce is given, the password is looked up through a closure.

use md5::{Digest, Md5};

pub const REALM: &str = "zk-sasl-md5";
pub const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";
/// The JDK refuses a digest-response longer than this.
const MAX_RESPONSE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest-response too long ({0} bytes)")]
    TooLong(usize),
    #[error("malformed digest-response: {0}")]
    Malformed(&'static str),
    #[error("digest-response directive {0} is missing")]
    Missing(&'static str),
    #[error("digest-response {0} does not match the challenge")]
    Mismatch(&'static str),
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("wrong password for {0:?}")]
    WrongPassword(String),
    #[error("a token after the exchange completed")]
    AfterCompletion,
}

#[derive(Debug)]
enum Step {
    /// Nothing received yet: the next token (whatever it holds) gets the challenge.
    Start,
    /// Challenge sent with this nonce.
    Challenged(String),
    Done,
}

/// One connection's exchange.
#[derive(Debug)]
pub struct DigestServer {
    step: Step,
    nonce: String,
}

/// What a step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send this token; more to come.
    Continue(Vec<u8>),
    /// Send this token: authenticated as this user (the authentication id).
    Complete { token: Vec<u8>, user: String },
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// As the JDK encodes user, realm and password with charset=utf-8: ISO 8859-1 when every
/// character fits, UTF-8 otherwise (RFC 2831 2.1.2.1).
fn bytes_8859_1(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) < 256) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

/// Parses `key=value,key="quoted",...` directives.
fn directives(text: &str) -> Result<Vec<(String, String)>, DigestError> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= b.len() {
            return Ok(out);
        }
        let k0 = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        if i >= b.len() {
            return Err(DigestError::Malformed("a directive without '='"));
        }
        let key = text[k0..i].trim().to_ascii_lowercase();
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut closed = false;
            let mut chars = text[i..].char_indices();
            while let Some((off, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        i += off + 1;
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(DigestError::Malformed("an unterminated quoted value"));
            }
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            value = text[v0..i].trim().to_owned();
        }
        out.push((key, value));
    }
}

impl DigestServer {
    /// A new exchange that will challenge with `nonce` (random, base64 or hex).
    pub fn new(nonce: String) -> DigestServer {
        DigestServer {
            step: Step::Start,
            nonce,
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.step, Step::Done)
    }

    /// One client token in, the server's answer out. `password(user)`: the user's
    /// password, `None` for an unknown user.
    pub fn step(
        &mut self,
        token: &[u8],
        password: impl Fn(&str) -> Option<String>,
    ) -> Result<Outcome, DigestError> {
        match std::mem::replace(&mut self.step, Step::Done) {
            Step::Start => {
                let challenge = format!(
                    "realm=\"{REALM}\",nonce=\"{}\",charset=utf-8,algorithm=md5-sess",
                    self.nonce
                );
                self.step = Step::Challenged(self.nonce.clone());
                Ok(Outcome::Continue(challenge.into_bytes()))
            }
            Step::Challenged(nonce) => self.respond(&nonce, token, password),
            Step::Done => Err(DigestError::AfterCompletion),
        }
    }

    fn respond(
        &mut self,
        nonce: &str,
        token: &[u8],
        password: impl Fn(&str) -> Option<String>,
    ) -> Result<Outcome, DigestError> {
        if token.len() > MAX_RESPONSE {
            return Err(DigestError::TooLong(token.len()));
        }
        let text = std::str::from_utf8(token).map_err(|_| DigestError::Malformed("not UTF-8"))?;
        let d = directives(text)?;
        let get = |k: &str| d.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let need = |k: &'static str| get(k).ok_or(DigestError::Missing(k));
        let user = need("username")?;
        let realm = get("realm").unwrap_or("");
        if !realm.is_empty() && realm != REALM {
            return Err(DigestError::Mismatch("realm"));
        }
        if need("nonce")? != nonce {
            return Err(DigestError::Mismatch("nonce"));
        }
        let cnonce = need("cnonce")?;
        let nc = need("nc")?;
        if nc != "00000001" {
            return Err(DigestError::Mismatch("nc"));
        }
        let qop = get("qop").unwrap_or("auth");
        if qop != "auth" {
            return Err(DigestError::Mismatch("qop (only auth is offered)"));
        }
        let uri = need("digest-uri")?;
        if !uri.eq_ignore_ascii_case(DIGEST_URI) {
            return Err(DigestError::Mismatch("digest-uri"));
        }
        if let Some(cs) = get("charset") {
            if !cs.eq_ignore_ascii_case("utf-8") {
                return Err(DigestError::Mismatch("charset"));
            }
        }
        let response = need("response")?;
        let authzid = get("authzid");
        let pw = password(user).ok_or_else(|| DigestError::UnknownUser(user.to_owned()))?;
        let secret = md5(&[
            &bytes_8859_1(user),
            b":",
            &bytes_8859_1(realm),
            b":",
            &bytes_8859_1(&pw),
        ]);
        let mut a1 = secret.to_vec();
        a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
        if let Some(z) = authzid {
            a1.extend_from_slice(b":");
            a1.extend_from_slice(z.as_bytes());
        }
        let ha1 = hex(&md5(&[&a1]));
        let kd = |a2: &str| {
            let ha2 = hex(&md5(&[a2.as_bytes()]));
            hex(&md5(&[
                format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes()
            ]))
        };
        if !kd(&format!("AUTHENTICATE:{uri}")).eq_ignore_ascii_case(response) {
            return Err(DigestError::WrongPassword(user.to_owned()));
        }
        self.step = Step::Done;
        Ok(Outcome::Complete {
            token: format!("rspauth={}", kd(&format!(":{uri}"))).into_bytes(),
            user: user.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side of the exchange, written from RFC 2831 (as the JDK client does it,
    /// with an authzid).
    fn client_response(challenge: &str, user: &str, pw: &str, authzid: Option<&str>) -> String {
        let d = directives(challenge).unwrap();
        let nonce = &d.iter().find(|(k, _)| k == "nonce").unwrap().1;
        let cnonce = "OA6MHXh6VqTrRk";
        let secret = md5(&[format!("{user}:{REALM}:{pw}").as_bytes()]);
        let mut a1 = secret.to_vec();
        a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
        if let Some(z) = authzid {
            a1.extend_from_slice(format!(":{z}").as_bytes());
        }
        let ha1 = hex(&md5(&[&a1]));
        let ha2 = hex(&md5(&[format!("AUTHENTICATE:{DIGEST_URI}").as_bytes()]));
        let resp = hex(&md5(&[format!(
            "{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"
        )
        .as_bytes()]));
        let mut s = format!(
            "charset=utf-8,username=\"{user}\",realm=\"{REALM}\",nonce=\"{nonce}\",nc=00000001,cnonce=\"{cnonce}\",digest-uri=\"{DIGEST_URI}\",maxbuf=65536,response={resp},qop=auth"
        );
        if let Some(z) = authzid {
            s.push_str(&format!(",authzid=\"{z}\""));
        }
        s
    }

    fn users(u: &str) -> Option<String> {
        (u == "bob").then(|| "bob's pw".to_owned())
    }

    #[test]
    fn two_round_trips_with_and_without_authzid() {
        for authzid in [None, Some("bob")] {
            let mut s = DigestServer::new("n0nce+/=".into());
            let Outcome::Continue(ch) = s.step(b"", users).unwrap() else {
                panic!()
            };
            let ch = String::from_utf8(ch).unwrap();
            assert_eq!(
                ch,
                "realm=\"zk-sasl-md5\",nonce=\"n0nce+/=\",charset=utf-8,algorithm=md5-sess"
            );
            let r = client_response(&ch, "bob", "bob's pw", authzid);
            match s.step(r.as_bytes(), users).unwrap() {
                Outcome::Complete { token, user } => {
                    assert_eq!(user, "bob");
                    assert!(token.starts_with(b"rspauth="), "{token:?}");
                    assert_eq!(token.len(), 8 + 32);
                }
                o => panic!("{o:?}"),
            }
            assert!(s.is_complete());
            assert_eq!(s.step(b"more", users), Err(DigestError::AfterCompletion));
        }
    }

    #[test]
    fn refuses_wrong_passwords_unknown_users_and_replays() {
        let ch = "realm=\"zk-sasl-md5\",nonce=\"abc\",charset=utf-8,algorithm=md5-sess";
        let start = || {
            let mut s = DigestServer::new("abc".into());
            s.step(b"", users).unwrap();
            s
        };
        let r = client_response(ch, "bob", "not it", None);
        assert_eq!(
            start().step(r.as_bytes(), users),
            Err(DigestError::WrongPassword("bob".into()))
        );
        let r = client_response(ch, "eve", "bob's pw", None);
        assert_eq!(
            start().step(r.as_bytes(), users),
            Err(DigestError::UnknownUser("eve".into()))
        );
        // Another server's nonce.
        let r = client_response(&ch.replace("abc", "xyz"), "bob", "bob's pw", None);
        assert_eq!(
            start().step(r.as_bytes(), users),
            Err(DigestError::Mismatch("nonce"))
        );
        let big = vec![b'a'; 5000];
        assert_eq!(start().step(&big, users), Err(DigestError::TooLong(5000)));
        assert!(start().step(b"username=\"bob", users).is_err());
        assert!(start().step(&[0xff, 0xfe], users).is_err());
    }
}
