//! Typed path parameters and query strings, deserialized with serde.
//!
//! A value that does not fit the target type is a [`Rejection`]: a
//! `400 Bad Request` whose body names the parameter, returned before any
//! upgrade happens.

use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use crate::web::body::{Response, StatusCode};

/// Where a parameter came from, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Path,
    Query,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Path => "path",
            Source::Query => "query",
        })
    }
}

/// A request was refused before the upgrade because a path parameter or the
/// query string did not deserialize. Turns into `400 Bad Request` with the
/// message as its body, so `?` works in
/// [`Handler::before_upgrade`](crate::Handler::before_upgrade).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    message: String,
}

impl Rejection {
    /// A rejection with `status` and a message for the client.
    pub(crate) fn with_status(status: StatusCode, message: impl Into<String>) -> Self {
        Rejection {
            status,
            message: message.into(),
        }
    }

    /// The message, naming the parameter (or the body's field).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status: 400 for a parameter or a body that does not
    /// deserialize, 413 for a body over the limit, 415 for a JSON body
    /// without `Content-Type: application/json`.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}

impl From<Rejection> for Response {
    fn from(r: Rejection) -> Response {
        crate::web::body::text(r.status, r.message)
    }
}

pub(crate) fn from_pairs<T: DeserializeOwned>(
    pairs: &[(String, String)],
    source: Source,
) -> Result<T, Rejection> {
    T::deserialize(Pairs { pairs, source }).map_err(|mut e| {
        // One parameter and an error that names none (a type's own
        // `Deserialize` failing, say): it is about that parameter.
        if let (None, [(key, _)]) = (&e.key, pairs) {
            e.key = Some(key.clone());
        }
        Rejection::with_status(StatusCode::BAD_REQUEST, e.render(source))
    })
}

pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[derive(Debug)]
pub(crate) struct DeError {
    key: Option<String>,
    message: String,
}

impl DeError {
    fn render(&self, source: Source) -> String {
        match &self.key {
            Some(key) => format!("invalid {source} parameter `{key}`: {}", self.message),
            None => format!("invalid {source} parameters: {}", self.message),
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            key: None,
            message: msg.to_string(),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            key: Some(field.to_owned()),
            message: "missing".to_owned(),
        }
    }
}

/// The whole set of parameters: a map (structs, maps), a sequence (tuples),
/// or a single value when there is exactly one parameter.
struct Pairs<'a> {
    pairs: &'a [(String, String)],
    source: Source,
}

impl<'a> Pairs<'a> {
    fn single(&self) -> Result<Value<'a>, DeError> {
        match self.pairs {
            [(k, v)] => Ok(Value { key: k, value: v }),
            _ => Err(de::Error::custom(format!(
                "expected exactly one {} parameter, found {}",
                self.source,
                self.pairs.len()
            ))),
        }
    }
}

macro_rules! forward_single {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.single()?.$method(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Pairs<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(MapAccess {
            iter: self.pairs.iter(),
            value: None,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_seq(SeqAccess {
            iter: self.pairs.iter(),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if len != self.pairs.len() {
            return Err(de::Error::custom(format!(
                "expected {len} {} parameters, found {}",
                self.source,
                self.pairs.len()
            )));
        }
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.pairs.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    forward_single! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_identifier
        deserialize_ignored_any
    }
}

struct MapAccess<'a, I> {
    iter: I,
    value: Option<(&'a str, &'a str)>,
}

impl<'de, I> de::MapAccess<'de> for MapAccess<'de, I>
where
    I: Iterator<Item = &'de (String, String)>,
{
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some((k, v));
                seed.deserialize(k.as_str().into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let (key, value) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value without key"))?;
        seed.deserialize(Value { key, value }).map_err(|mut e| {
            e.key.get_or_insert_with(|| key.to_owned());
            e
        })
    }
}

struct SeqAccess<I> {
    iter: I,
}

impl<'de, I> de::SeqAccess<'de> for SeqAccess<I>
where
    I: Iterator<Item = &'de (String, String)>,
{
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.iter.next() {
            Some((key, value)) => {
                seed.deserialize(Value { key, value })
                    .map(Some)
                    .map_err(|mut e| {
                        e.key.get_or_insert_with(|| key.clone());
                        e
                    })
            }
            None => Ok(None),
        }
    }
}

/// One parameter's text, parsed into whatever primitive the target asks for.
struct Value<'a> {
    key: &'a str,
    value: &'a str,
}

impl Value<'_> {
    fn invalid(&self, expected: &str) -> DeError {
        // The value is not repeated: query strings carry tokens, and a
        // rejection may end up in a log.
        DeError {
            key: Some(self.key.to_owned()),
            message: format!("expected {expected}"),
        }
    }
}

macro_rules! parse_value {
    ($($method:ident => $visit:ident : $ty:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            match self.value.parse::<$ty>() {
                Ok(v) => visitor.$visit(v),
                Err(_) => Err(self.invalid($what)),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Value<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_str(self.value)
    }

    parse_value! {
        deserialize_bool => visit_bool: bool, "`true` or `false`";
        deserialize_i8 => visit_i8: i8, "an integer (i8)";
        deserialize_i16 => visit_i16: i16, "an integer (i16)";
        deserialize_i32 => visit_i32: i32, "an integer (i32)";
        deserialize_i64 => visit_i64: i64, "an integer (i64)";
        deserialize_i128 => visit_i128: i128, "an integer (i128)";
        deserialize_u8 => visit_u8: u8, "a non-negative integer (u8)";
        deserialize_u16 => visit_u16: u16, "a non-negative integer (u16)";
        deserialize_u32 => visit_u32: u32, "a non-negative integer (u32)";
        deserialize_u64 => visit_u64: u64, "a non-negative integer (u64)";
        deserialize_u128 => visit_u128: u128, "a non-negative integer (u128)";
        deserialize_f32 => visit_f32: f32, "a number";
        deserialize_f64 => visit_f64: f64, "a number";
        deserialize_char => visit_char: char, "a single character";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let key = self.key;
        de::Deserializer::deserialize_enum(
            de::value::BorrowedStrDeserializer::<DeError>::new(self.value),
            name,
            variants,
            visitor,
        )
        .map_err(|mut e| {
            e.key.get_or_insert_with(|| key.to_owned());
            e
        })
    }

    serde::forward_to_deserialize_any! {
        str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Room {
        room: String,
        id: u32,
    }

    #[test]
    fn structs_tuples_and_singles() {
        let p = pairs(&[("room", "lobby"), ("id", "7")]);
        let r: Room = from_pairs(&p, Source::Path).unwrap();
        assert_eq!(
            r,
            Room {
                room: "lobby".into(),
                id: 7
            }
        );
        let t: (String, u32) = from_pairs(&p, Source::Path).unwrap();
        assert_eq!(t, ("lobby".into(), 7));
        let one: u64 = from_pairs(&pairs(&[("id", "42")]), Source::Path).unwrap();
        assert_eq!(one, 42);
        let s: String = from_pairs(&pairs(&[("room", "a b")]), Source::Path).unwrap();
        assert_eq!(s, "a b");
    }

    #[test]
    fn errors_name_the_parameter() {
        let p = pairs(&[("room", "lobby"), ("id", "abc")]);
        let e = from_pairs::<Room>(&p, Source::Path).unwrap_err();
        assert_eq!(
            e.message(),
            "invalid path parameter `id`: expected a non-negative integer (u32)"
        );
        let e = from_pairs::<Room>(&pairs(&[("room", "x")]), Source::Query).unwrap_err();
        assert_eq!(e.message(), "invalid query parameter `id`: missing");
        let e = from_pairs::<u8>(&pairs(&[("n", "300")]), Source::Path).unwrap_err();
        assert!(e.message().contains("`n`"), "{e}");
    }

    #[test]
    fn rejections_never_repeat_the_value() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Q {
            token: u64,
        }
        let e = from_pairs::<Q>(&parse_query("token=SECRET-123"), Source::Query).unwrap_err();
        assert!(
            e.message().contains("`token`") && !e.message().contains("SECRET"),
            "{e}"
        );
    }

    #[test]
    fn query_options_and_enums() {
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Mode {
            Fast,
            Slow,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        struct Q {
            token: Option<String>,
            mode: Mode,
            #[serde(default)]
            verbose: bool,
        }
        let q: Q = from_pairs(&parse_query("mode=slow&token=a%2Bb"), Source::Query).unwrap();
        assert_eq!(
            q,
            Q {
                token: Some("a+b".into()),
                mode: Mode::Slow,
                verbose: false
            }
        );
        let e = from_pairs::<Q>(&parse_query("mode=medium"), Source::Query).unwrap_err();
        assert!(
            e.message().starts_with("invalid query parameter `mode`"),
            "{e}"
        );
        let _ = Mode::Fast;
    }
}
