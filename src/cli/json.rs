//! The little JSON the client commands print: strings escaped by hand (RFC 8259 §7), since a
//! serializer crate would be the only reason to pull in serde.

/// `text` as a JSON string literal.
pub fn json_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Bytes as a JSON string; bytes that are not UTF-8 become U+FFFD (keys and values are text in
/// practice; the Rust and C APIs carry any bytes).
pub fn json_bytes(bytes: &[u8]) -> String {
    json_str(&String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(json_bytes(&[b'x', 0xff]), "\"x\u{fffd}\"");
    }
}
