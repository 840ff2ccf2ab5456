//! The one JSON writer of the crate: every command that prints JSON (the client commands,
//! `harness demo`, `harness-sim`, `harness-bench`, `harness-check`) builds it here, so there is
//! one escaping rule (RFC 8259 §7: quotation mark, reverse solidus and the control characters
//! U+0000..U+001F escaped, the last as `\u00XX`) and no float that JSON cannot carry.
//!
//! A writer rather than a serializer crate: the objects are flat and few, and their field order
//! is part of what scripts read.

use std::fmt::Write;

/// `text` as a JSON string literal.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_string(&mut out, text);
    out
}

/// Bytes as a JSON string; bytes that are not UTF-8 become U+FFFD (keys and values are text in
/// practice; the Rust and C APIs carry any bytes).
pub fn bytes(bytes: &[u8]) -> String {
    string(&String::from_utf8_lossy(bytes))
}

/// `x` with `decimals` digits after the point; `null` for NaN and the infinities, which JSON
/// has no literal for (a missing measurement).
pub fn fixed(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "null".to_string()
    }
}

/// Values that are already JSON, as one array.
pub fn array(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    format!("[{}]", items.join(","))
}

/// One JSON object, fields in the order they are added.
#[derive(Clone, Debug)]
pub struct Object {
    out: String,
}

impl Default for Object {
    fn default() -> Object {
        Object::new()
    }
}

impl Object {
    /// An object with no fields yet.
    pub fn new() -> Object {
        Object { out: String::from("{") }
    }

    /// Adds `name` with a value that is already JSON (a nested object, an array, a number).
    pub fn raw(mut self, name: &str, json: &str) -> Object {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_string(&mut self.out, name);
        self.out.push(':');
        self.out.push_str(json);
        self
    }

    /// Adds a string field.
    pub fn str(self, name: &str, text: &str) -> Object {
        self.raw(name, &string(text))
    }

    /// Adds a byte string field (see `bytes`).
    pub fn bytes(self, name: &str, value: &[u8]) -> Object {
        self.raw(name, &bytes(value))
    }

    /// Adds a whole number.
    pub fn uint(self, name: &str, value: u64) -> Object {
        self.raw(name, &value.to_string())
    }

    /// Adds a whole number, or `null` for `None`.
    pub fn opt_uint(self, name: &str, value: Option<u64>) -> Object {
        self.raw(name, &value.map_or_else(|| "null".to_string(), |v| v.to_string()))
    }

    /// Adds `true` or `false`.
    pub fn bool(self, name: &str, value: bool) -> Object {
        self.raw(name, if value { "true" } else { "false" })
    }

    /// Adds a number with `decimals` digits after the point (see `fixed`).
    pub fn fixed(self, name: &str, x: f64, decimals: usize) -> Object {
        self.raw(name, &fixed(x, decimals))
    }

    /// The object's text.
    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_quote_backslash_and_control_characters_only() {
        assert_eq!(string("a\"b\\c\nd\u{1}\té/\u{7f}"), "\"a\\\"b\\\\c\\u000ad\\u0001\\u0009é/\u{7f}\"");
        assert_eq!(bytes(&[b'x', 0xff]), "\"x\u{fffd}\"");
    }

    #[test]
    fn a_real_parser_reads_back_every_character() {
        let text: String = (0u32..0x250).filter_map(char::from_u32).chain(['\u{2028}', '😀']).collect();
        let object = Object::new().str(&text, &text).fixed("x", 0.5, 3).finish();
        let parsed: serde_json::Value = serde_json::from_str(&object).unwrap();
        assert_eq!(parsed[&text], serde_json::Value::String(text.clone()));
        assert_eq!(parsed["x"], 0.5);
    }

    #[test]
    fn objects_keep_field_order_and_numbers_json_can_carry() {
        let text = Object::new()
            .str("name", "n\"1")
            .uint("n", 3)
            .opt_uint("lag", None)
            .bool("ok", true)
            .fixed("rate", 3.9, 3)
            .fixed("ratio", f64::NAN, 3)
            .raw("list", &array(["1".to_string(), string("x")]))
            .finish();
        assert_eq!(
            text,
            "{\"name\":\"n\\\"1\",\"n\":3,\"lag\":null,\"ok\":true,\"rate\":3.900,\"ratio\":null,\"list\":[1,\"x\"]}"
        );
        assert_eq!(Object::new().finish(), "{}");
        assert_eq!(array(Vec::new()), "[]");
    }
}
