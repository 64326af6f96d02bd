//! ZooKeeper's path rules (PathUtils.validatePath).
//!
//! Path = "/" | ("/" Segment)+ ; Segment = 1* allowed char, not "." or "..".
//! Not allowed anywhere: U+0000, U+0001–U+001F, U+007F–U+009F, U+D800–U+F8FF,
//! U+FFF0–U+FFFF and every character above U+FFFF (Java sees them as surrogates).

pub fn validate_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("Path length must be > 0");
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("Path must not end with / character");
    }
    // Byte-wise: every code point the rules forbid is outside ASCII or a control byte,
    // so only non-ASCII text needs decoding (no allocation either way).
    for seg in path[1..].split('/') {
        if seg.is_empty() {
            return Err("empty node name specified");
        }
        if seg == "." || seg == ".." {
            return Err("relative paths not allowed");
        }
    }
    let bad = |c: u32| {
        c == 0
            || (1..=0x1f).contains(&c)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || c >= 0xfff0
    };
    if path.is_ascii() {
        if path.bytes().any(|b| bad(b as u32)) {
            return Err("invalid character");
        }
    } else if path.chars().any(|c| bad(c as u32)) {
        return Err("invalid character");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_path as v;
    #[test]
    fn rules() {
        for ok in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/..a",
            "/a/...",
            "/zookeeper",
            "/é",
        ] {
            assert!(v(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a\u{0}",
            "/a\u{1}",
            "/\u{7f}",
            "/\u{e000}",
            "/\u{1F600}",
            "/\u{fff0}",
        ] {
            assert!(v(bad).is_err(), "{bad:?}");
        }
    }
}
