//! Reading JSON text from outside (events, declarations): one reader for both, stricter than
//! `serde_json::from_str` where it matters. A leading UTF-8 byte order mark (which editors on
//! Windows write) is skipped instead of failing with "expected value at line 1 column 1", and
//! a key given twice in one object is an error naming the key, instead of silently keeping
//! the last value (`{"target": "i-a", "target": "i-b"}` must not mean `i-b`).

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The UTF-8 byte order mark.
const BOM: char = '\u{feff}';

/// Why JSON text was refused, with where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all.
    #[error("is not valid JSON (line {line}, column {column}: {message})")]
    Syntax {
        /// Line (1-based).
        line: usize,
        /// Column (1-based).
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// A key appears twice in one object.
    #[error("has the key {key:?} twice in one object (line {line}, column {column})")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Line of the second occurrence.
        line: usize,
        /// Column at the end of the repeated key.
        column: usize,
    },
}

/// Parses JSON text into a value: BOM skipped, duplicate keys rejected.
pub fn parse(text: &str) -> Result<Value, JsonError> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let result = Strict(&duplicate)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    result.map_err(|e| match duplicate.into_inner() {
        Some(key) => JsonError::DuplicateKey {
            key,
            line: e.line(),
            column: e.column(),
        },
        None => JsonError::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        },
    })
}

/// Builds a `Value`, refusing a key repeated within one object (and noting which).
#[derive(Clone, Copy)]
struct Strict<'a>(&'a RefCell<Option<String>>);

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                let message = format!("duplicate key {key:?}");
                *self.0.borrow_mut() = Some(key);
                return Err(de::Error::custom(message));
            }
            let v = map.next_value_seed(self)?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_skipped() {
        assert_eq!(
            parse("\u{feff}{\"a\": 1}").unwrap(),
            serde_json::json!({"a": 1})
        );
        // Before: serde_json alone refuses it.
        assert!(serde_json::from_str::<Value>("\u{feff}{}").is_err());
    }

    #[test]
    fn a_duplicate_key_is_an_error_naming_it() {
        let e = parse("{\"action\": \"execute\",\n \"target\": \"i-a\", \"target\": \"i-b\"}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "has the key \"target\" twice in one object (line 2, column 26)"
        );
        let e = parse(r#"{"x": [{"k": 1, "k": 2}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("has the key \"k\" twice"), "{e}");
        // The same key in different objects is fine, and numbers and nesting survive.
        assert_eq!(
            parse(r#"{"k": {"k": [1, -2, 2.5, null, true]}}"#).unwrap(),
            serde_json::json!({"k": {"k": [1, -2, 2.5, null, true]}})
        );
    }

    #[test]
    fn trailing_text_is_still_an_error() {
        assert!(matches!(parse("{} x"), Err(JsonError::Syntax { .. })));
        assert_eq!(
            parse("").unwrap_err().to_string(),
            "is not valid JSON (line 1, column 0: EOF while parsing a value at line 1 column 0)"
        );
    }
}
