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
    let chars: Vec<char> = path.chars().collect();
    for i in 1..chars.len() {
        let c = chars[i];
        let last = chars[i - 1];
        let next_is_end_or_slash = i + 1 == chars.len() || chars[i + 1] == '/';
        let c32 = c as u32;
        if c32 == 0 {
            return Err("null character not allowed");
        } else if c == '/' && last == '/' {
            return Err("empty node name specified");
        } else if c == '.'
            && next_is_end_or_slash
            && (last == '/' || (last == '.' && i >= 2 && chars[i - 2] == '/'))
        {
            return Err("relative paths not allowed");
        } else if (1..=0x1f).contains(&c32)
            || (0x7f..=0x9f).contains(&c32)
            || (0xd800..=0xf8ff).contains(&c32)
            || c32 >= 0xfff0
        {
            return Err("invalid character");
        }
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
