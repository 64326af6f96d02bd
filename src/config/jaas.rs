//! JAAS login configuration files, as the JDK's ConfigFile reads them: the file ZooKeeper
//! is given with `-Djava.security.auth.login.config`.
//!
//! ```text
//! Server {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     user_super="adminsecret"
//!     user_bob="bobsecret";
//! };
//! ```
//!
//! Sections of login modules, each a class name, a flag and `key=value` options (values
//! quoted or bare), ending in `;`; `//` and `/* */` comments.

use std::collections::BTreeMap;

/// Why a JAAS file does not parse: the line (0 at the end of the file) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{what}", if *.line > 0 { format!("line {}: ", .line) } else { "unexpected end of file: ".into() })]
pub struct JaasError {
    pub line: usize,
    pub what: String,
}

fn err(line: usize, what: impl Into<String>) -> JaasError {
    JaasError {
        line,
        what: what.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub class: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

/// Section name → its modules.
pub type Jaas = BTreeMap<String, Vec<Module>>;

#[derive(PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Punct(char),
}

/// A token as an error may show it: never a quoted value (it may be a password).
impl std::fmt::Debug for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Word(w) if w.len() <= 64 => write!(f, "{w:?}"),
            Tok::Word(_) => f.write_str("a word"),
            Tok::Quoted(_) => f.write_str("a quoted value"),
            Tok::Punct(c) => write!(f, "'{c}'"),
        }
    }
}

fn tokens(text: &str) -> Result<Vec<(Tok, usize)>, JaasError> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    let mut line = 1;
    while i < b.len() {
        let c = b[i] as char;
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            '/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            '/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                if i + 1 >= b.len() {
                    return Err(err(line, "unterminated comment"));
                }
                i += 2;
            }
            '{' | '}' | ';' | '=' => {
                out.push((Tok::Punct(c), line));
                i += 1;
            }
            '"' | '\'' => {
                let start = i + 1;
                let mut j = start;
                let mut s = String::new();
                while j < b.len() && b[j] as char != c {
                    if b[j] == b'\\' && j + 1 < b.len() {
                        j += 1;
                    }
                    if b[j] == b'\n' {
                        line += 1;
                    }
                    j += 1;
                }
                if j >= b.len() {
                    return Err(err(line, "unterminated quoted value"));
                }
                // Backslash escapes as the JDK's StreamTokenizer reads them: the next char.
                let raw = &text[start..j];
                let mut chars = raw.chars();
                while let Some(ch) = chars.next() {
                    if ch == '\\' {
                        if let Some(n) = chars.next() {
                            s.push(n);
                        }
                    } else {
                        s.push(ch);
                    }
                }
                out.push((Tok::Quoted(s), line));
                i = j + 1;
            }
            _ => {
                let start = i;
                while i < b.len() {
                    let ch = b[i] as char;
                    if ch.is_ascii_whitespace() || "{};=\"'".contains(ch) {
                        break;
                    }
                    i += 1;
                }
                out.push((Tok::Word(text[start..i].to_owned()), line));
            }
        }
    }
    Ok(out)
}

/// Parses a JAAS file's text. Errors name the line.
pub fn parse(text: &str) -> Result<Jaas, JaasError> {
    let toks = tokens(text)?;
    let mut out = Jaas::new();
    let mut i = 0;
    let word = |i: usize, what: &str| -> Result<String, JaasError> {
        match toks.get(i) {
            Some((Tok::Word(w), _)) => Ok(w.clone()),
            Some((t, line)) => Err(err(*line, format!("expected {what}, found {t:?}"))),
            None => Err(err(0, format!("expected {what}"))),
        }
    };
    let punct = |i: usize, p: char| -> Result<(), JaasError> {
        match toks.get(i) {
            Some((Tok::Punct(c), _)) if *c == p => Ok(()),
            Some((t, line)) => Err(err(*line, format!("expected '{p}', found {t:?}"))),
            None => Err(err(0, format!("expected '{p}'"))),
        }
    };
    while i < toks.len() {
        let name = word(i, "a section name")?;
        punct(i + 1, '{')?;
        i += 2;
        let mut modules = Vec::new();
        loop {
            if let Some((Tok::Punct('}'), _)) = toks.get(i) {
                i += 1;
                break;
            }
            let class = word(i, "a login module class")?;
            let flag = word(
                i + 1,
                "a control flag (required, requisite, sufficient, optional)",
            )?;
            if !["required", "requisite", "sufficient", "optional"]
                .contains(&flag.to_ascii_lowercase().as_str())
            {
                let line = toks[i + 1].1;
                return Err(err(line, format!("{flag:?} is not a control flag")));
            }
            i += 2;
            let mut options = BTreeMap::new();
            loop {
                match toks.get(i) {
                    Some((Tok::Punct(';'), _)) => {
                        i += 1;
                        break;
                    }
                    Some((Tok::Word(k), _)) => {
                        punct(i + 1, '=')?;
                        let v = match toks.get(i + 2) {
                            Some((Tok::Word(v) | Tok::Quoted(v), _)) => v.clone(),
                            Some((t, line)) => {
                                return Err(err(*line, format!("expected a value, found {t:?}")))
                            }
                            None => return Err(err(0, "expected a value")),
                        };
                        options.insert(k.clone(), v);
                        i += 3;
                    }
                    Some((t, line)) => {
                        return Err(err(
                            *line,
                            format!("expected an option or ';', found {t:?}"),
                        ))
                    }
                    None => return Err(err(0, "expected ';'")),
                }
            }
            modules.push(Module {
                class,
                flag,
                options,
            });
        }
        // The section's closing `};` (the JDK requires the ';').
        punct(i, ';')?;
        i += 1;
        out.entry(name).or_default().extend(modules);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zookeepers_documented_sections() {
        let j = parse(
            r#"
            // the server side
            Server {
                   org.apache.zookeeper.server.auth.DigestLoginModule required
                   user_super="adminsecret"
                   user_bob="bob's \"pw\""; /* two users */
            };
            QuorumServer {
                   org.apache.zookeeper.server.auth.DigestLoginModule required
                   user_test=test;
            };
            Client {
                   com.sun.security.auth.module.Krb5LoginModule required
                   useKeyTab=true
                   keyTab="/path/to/keytab"
                   principal="zookeeper/host@EXAMPLE.COM";
            };
            "#,
        )
        .unwrap();
        let s = &j["Server"][0];
        assert_eq!(
            s.class,
            "org.apache.zookeeper.server.auth.DigestLoginModule"
        );
        assert_eq!(s.options["user_super"], "adminsecret");
        assert_eq!(s.options["user_bob"], "bob's \"pw\"");
        assert_eq!(j["QuorumServer"][0].options["user_test"], "test");
        assert_eq!(
            j["Client"][0].options["principal"],
            "zookeeper/host@EXAMPLE.COM"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("Server {\n  X required\n  a=\"b\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("end of file"), "{e}");
        let e = parse("Server {\n  X maybe a=b;\n};")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("control flag"), "{e}");
        assert!(
            parse("Server { X required a=b; }").is_err(),
            "the closing ';'"
        );
    }
}
