//! `None` is absent, not `null`: the payload's own fields whose value is `None` are left out of
//! the encoded payload, as the seed's schemas want (zod's `.optional()` accepts a missing key
//! and refuses `null`). [`Event::OMIT_NONE`](crate::Event::OMIT_NONE) turns it off per type.
//!
//! [`OmitNone`] serialises a value through a serializer that forwards every call to the real
//! one, except for the fields of the value itself: a struct field, or a map entry when serde
//! writes the value as a map (`#[serde(flatten)]`), is skipped when its value serialises as
//! `none`. Whether it does is asked first with [`is_none`], a serializer that answers at the
//! value's first call without writing or allocating anything; only then is the field written,
//! once, by the real serializer. [`is_none`] says it is not human-readable, so that a type with
//! a text form (a `Uuid`, say) answers from its compact form instead of formatting its text
//! first: in serde's data model an `Option` is `none` or not the same way in every format.
//! Nested values are the real serializer's alone, so `null`s inside them, `Some(Value::Null)`
//! and unit values are written as serde writes them.

use std::fmt;

use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeStruct, Serializer};

/// `T`, serialised with its top-level fields that are `None` left out.
///
/// Meant for self-describing formats such as JSON: the field count handed to the format is the
/// one before fields are left out, which a format that writes lengths up front would get wrong.
/// `Ticket { id: 1, note: None }` is written `{"id":1}`.
pub(crate) struct OmitNone<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Serialize + ?Sized> Serialize for OmitNone<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(TopLevel(serializer))
    }
}

/// Whether `value` serialises as `none` (`Option::None`, or a newtype struct around one): asked
/// of the value's `Serialize` impl, which answers at its first serializer call.
pub(crate) fn is_none<T: Serialize + ?Sized>(value: &T) -> bool {
    matches!(value.serialize(IsNone), Ok(true))
}

/// The serializer of the value itself: forwards everything, and wraps the struct and map
/// serializers so that they skip `None` fields.
struct TopLevel<S>(S);

macro_rules! forward {
    ($($method:ident: $ty:ty),* $(,)?) => {$(
        #[inline]
        fn $method(self, v: $ty) -> Result<Self::Ok, Self::Error> {
            self.0.$method(v)
        }
    )*};
}

impl<S: Serializer> Serializer for TopLevel<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = S::SerializeSeq;
    type SerializeTuple = S::SerializeTuple;
    type SerializeTupleStruct = S::SerializeTupleStruct;
    type SerializeTupleVariant = S::SerializeTupleVariant;
    type SerializeMap = OmitMap<S::SerializeMap>;
    type SerializeStruct = OmitStruct<S::SerializeStruct>;
    type SerializeStructVariant = S::SerializeStructVariant;

    forward!(
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128,
        serialize_f32: f32,
        serialize_f64: f64,
        serialize_char: char,
        serialize_str: &str,
        serialize_bytes: &[u8],
        serialize_unit_struct: &'static str,
    );

    fn serialize_none(self) -> Result<Self::Ok, Self::Error> {
        self.0.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok, Self::Error> {
        self.0.serialize_some(value)
    }

    fn serialize_unit(self) -> Result<Self::Ok, Self::Error> {
        self.0.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
    ) -> Result<Self::Ok, Self::Error> {
        self.0.serialize_unit_variant(name, variant_index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        self.0.serialize_newtype_struct(name, value)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        self.0
            .serialize_newtype_variant(name, variant_index, variant, value)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        self.0.serialize_seq(len)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Self::Error> {
        self.0.serialize_tuple(len)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        self.0.serialize_tuple_struct(name, len)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        self.0
            .serialize_tuple_variant(name, variant_index, variant, len)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Ok(OmitMap {
            inner: self.0.serialize_map(len)?,
            pending_key: None,
        })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        Ok(OmitStruct {
            inner: self.0.serialize_struct(name, len)?,
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        variant_index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        self.0
            .serialize_struct_variant(name, variant_index, variant, len)
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<Self::Ok, Self::Error> {
        self.0.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A struct's fields, `None` ones skipped.
pub(crate) struct OmitStruct<M> {
    inner: M,
}

impl<M: SerializeStruct> SerializeStruct for OmitStruct<M> {
    type Ok = M::Ok;
    type Error = M::Error;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        if is_none(value) {
            self.inner.skip_field(key)
        } else {
            self.inner.serialize_field(key, value)
        }
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), Self::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<Self::Ok, Self::Error> {
        self.inner.end()
    }
}

/// A map's entries (a struct with `#[serde(flatten)]` fields is written as one), `None` ones
/// skipped.
pub(crate) struct OmitMap<M> {
    inner: M,
    /// A key given alone (`serialize_key`), held until its value shows whether the entry is
    /// written. Only text keys are held; any other key is written at once, and its entry kept.
    pending_key: Option<String>,
}

impl<M: SerializeMap> SerializeMap for OmitMap<M> {
    type Ok = M::Ok;
    type Error = M::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Self::Error> {
        match key.serialize(KeyText) {
            Ok(text) => {
                self.pending_key = Some(text);
                Ok(())
            }
            Err(NotNone) => self.inner.serialize_key(key),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        match self.pending_key.take() {
            Some(key) => {
                if is_none(value) {
                    Ok(())
                } else {
                    self.inner.serialize_entry(&key, value)
                }
            }
            None => self.inner.serialize_value(value),
        }
    }

    #[inline]
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), Self::Error> {
        if is_none(value) {
            Ok(())
        } else {
            self.inner.serialize_entry(key, value)
        }
    }

    fn end(self) -> Result<Self::Ok, Self::Error> {
        self.inner.end()
    }
}

/// The answer "not `None`" of [`IsNone`] (and "not text" of [`KeyText`]): the error of a
/// serializer that stops at the first call.
#[derive(Debug)]
struct NotNone;

impl fmt::Display for NotNone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not None")
    }
}

impl std::error::Error for NotNone {}

impl ser::Error for NotNone {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotNone
    }
}

macro_rules! answer {
    ($answer:expr; $($method:ident: $ty:ty),* $(,)?) => {$(
        #[inline]
        fn $method(self, _: $ty) -> Result<Self::Ok, Self::Error> {
            $answer
        }
    )*};
}

/// Answers whether a value serialises as `none`, at the value's first call, without looking
/// further: `Some(_)` is not `None` whatever it holds, and a compound value stops at once.
struct IsNone;

impl Serializer for IsNone {
    type Ok = bool;
    type Error = NotNone;
    type SerializeSeq = Impossible<bool, NotNone>;
    type SerializeTuple = Impossible<bool, NotNone>;
    type SerializeTupleStruct = Impossible<bool, NotNone>;
    type SerializeTupleVariant = Impossible<bool, NotNone>;
    type SerializeMap = Impossible<bool, NotNone>;
    type SerializeStruct = Impossible<bool, NotNone>;
    type SerializeStructVariant = Impossible<bool, NotNone>;

    answer!(Ok(false);
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128,
        serialize_f32: f32,
        serialize_f64: f64,
        serialize_char: char,
        serialize_str: &str,
        serialize_bytes: &[u8],
        serialize_unit_struct: &'static str,
    );

    fn serialize_none(self) -> Result<bool, NotNone> {
        Ok(true)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<bool, NotNone> {
        Ok(false)
    }

    fn serialize_unit(self) -> Result<bool, NotNone> {
        Ok(false)
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<bool, NotNone> {
        Ok(false)
    }

    /// A newtype struct is transparent in JSON: `Wrapper(None)` would be written `null`.
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<bool, NotNone> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, NotNone> {
        Ok(false)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotNone> {
        Err(NotNone)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotNone> {
        Err(NotNone)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotNone> {
        Err(NotNone)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotNone> {
        Err(NotNone)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotNone> {
        Err(NotNone)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotNone> {
        Err(NotNone)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotNone> {
        Err(NotNone)
    }

    /// Text is not `None`: answered without formatting it (the default would allocate).
    fn collect_str<T: fmt::Display + ?Sized>(self, _: &T) -> Result<bool, NotNone> {
        Ok(false)
    }

    /// Not human-readable: a `Uuid` then hands over its 16 bytes instead of formatting its
    /// 36 characters, and a `none` is a `none` either way.
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// A map key given alone, as text; any other key is [`NotNone`] ("not text").
struct KeyText;

impl Serializer for KeyText {
    type Ok = String;
    type Error = NotNone;
    type SerializeSeq = Impossible<String, NotNone>;
    type SerializeTuple = Impossible<String, NotNone>;
    type SerializeTupleStruct = Impossible<String, NotNone>;
    type SerializeTupleVariant = Impossible<String, NotNone>;
    type SerializeMap = Impossible<String, NotNone>;
    type SerializeStruct = Impossible<String, NotNone>;
    type SerializeStructVariant = Impossible<String, NotNone>;

    answer!(Err(NotNone);
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128,
        serialize_f32: f32,
        serialize_f64: f64,
        serialize_bytes: &[u8],
        serialize_unit_struct: &'static str,
    );

    fn serialize_char(self, c: char) -> Result<String, NotNone> {
        Ok(c.to_string())
    }

    fn serialize_str(self, s: &str) -> Result<String, NotNone> {
        Ok(s.to_owned())
    }

    fn serialize_none(self) -> Result<String, NotNone> {
        Err(NotNone)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, NotNone> {
        Err(NotNone)
    }

    fn serialize_unit(self) -> Result<String, NotNone> {
        Err(NotNone)
    }

    /// An enum variant as a key is its name (as serde_json writes it).
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, NotNone> {
        Ok(variant.to_owned())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, NotNone> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, NotNone> {
        Err(NotNone)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotNone> {
        Err(NotNone)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotNone> {
        Err(NotNone)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotNone> {
        Err(NotNone)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotNone> {
        Err(NotNone)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotNone> {
        Err(NotNone)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotNone> {
        Err(NotNone)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotNone> {
        Err(NotNone)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::{json, Value};

    use super::{is_none, OmitNone};

    fn omit<T: Serialize>(value: &T) -> String {
        serde_json::to_string(&OmitNone(value)).unwrap()
    }

    #[derive(Serialize)]
    struct Inner {
        a: Option<u8>,
        b: Option<u8>,
    }

    #[derive(Serialize)]
    struct Wrapper(Option<u8>);

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Plain {
        tenant_id: &'static str,
        first: Option<u8>,
        some_null: Option<Value>,
        bare_null: Value,
        nested: Inner,
        wrapped: Wrapper,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        last: Option<&'static str>,
        list: Vec<Option<u8>>,
    }

    #[test]
    fn top_level_nones_are_left_out_and_everything_else_is_kept() {
        let plain = Plain {
            tenant_id: "t",
            first: None,
            some_null: Some(Value::Null),
            bare_null: Value::Null,
            nested: Inner {
                a: None,
                b: Some(1),
            },
            wrapped: Wrapper(None),
            skipped: None,
            last: None,
            list: vec![None, Some(2)],
        };
        assert_eq!(
            omit(&plain),
            r#"{"tenantId":"t","someNull":null,"bareNull":null,"nested":{"a":null,"b":1},"list":[null,2]}"#
        );
        // Only None at the top: a leading None leaves no stray comma, a trailing one either.
        let only = Inner { a: None, b: None };
        assert_eq!(omit(&only), "{}");
        let first = Inner {
            a: None,
            b: Some(3),
        };
        assert_eq!(omit(&first), r#"{"b":3}"#);
        let last = Inner {
            a: Some(3),
            b: None,
        };
        assert_eq!(omit(&last), r#"{"a":3}"#);
    }

    #[derive(Serialize)]
    struct Flat {
        id: u8,
        gone: Option<u8>,
        #[serde(flatten)]
        inner: Inner,
        #[serde(flatten)]
        extra: BTreeMap<String, Option<u8>>,
    }

    #[test]
    fn flattened_fields_and_map_entries_are_left_out() {
        let mut extra = BTreeMap::new();
        extra.insert("x".to_owned(), None);
        extra.insert("y".to_owned(), Some(4));
        let flat = Flat {
            id: 1,
            gone: None,
            inner: Inner {
                a: Some(2),
                b: None,
            },
            extra,
        };
        assert_eq!(omit(&flat), r#"{"id":1,"a":2,"y":4}"#);
    }

    /// A map whose `Serialize` gives each key and value in separate calls.
    struct SplitMap(Vec<(Value, Option<u8>)>);

    impl Serialize for SplitMap {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                map.serialize_key(k)?;
                map.serialize_value(v)?;
            }
            map.end()
        }
    }

    #[test]
    fn keys_and_values_given_apart_are_handled() {
        let map = SplitMap(vec![
            (json!("a"), None),
            (json!("b"), Some(1)),
            (json!(7), None),
            (json!("c"), None),
        ]);
        // A text key waits for its value; a number key is written at once and keeps its entry.
        assert_eq!(omit(&map), r#"{"b":1,"7":null}"#);
    }

    #[test]
    fn the_probe_answers_without_looking_inside() {
        assert!(is_none(&None::<u8>));
        assert!(is_none(&Wrapper(None)));
        assert!(!is_none(&Some(Value::Null)));
        assert!(!is_none(&Value::Null));
        assert!(!is_none(&Some(None::<u8>)));
        assert!(!is_none(&json!({"a": null})));
        assert!(!is_none(&vec![None::<u8>]));
        assert!(!is_none(&uuid::Uuid::nil()));
        assert!(!is_none(&chrono::DateTime::<chrono::Utc>::MIN_UTC));
    }

    /// Written as text only where the format is human-readable, counting how often it was.
    struct TextWhenReadable(std::cell::Cell<u32>);

    impl Serialize for TextWhenReadable {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if s.is_human_readable() {
                self.0.set(self.0.get() + 1);
                s.serialize_str("text")
            } else {
                s.serialize_u8(0)
            }
        }
    }

    #[test]
    fn the_probe_takes_the_compact_form_and_the_output_the_readable_one() {
        #[derive(Serialize)]
        struct Row<'a> {
            value: &'a TextWhenReadable,
        }
        let value = TextWhenReadable(std::cell::Cell::new(0));
        assert!(!is_none(&value));
        assert_eq!(value.0.get(), 0, "the probe formatted the text form");
        assert_eq!(omit(&Row { value: &value }), r#"{"value":"text"}"#);
        assert_eq!(value.0.get(), 1);
    }

    #[test]
    fn values_that_are_not_structs_or_maps_are_unchanged() {
        assert_eq!(omit(&None::<u8>), "null");
        assert_eq!(omit(&vec![None::<u8>]), "[null]");
        assert_eq!(omit(&Wrapper(None)), "null");
        assert_eq!(omit(&5u8), "5");
    }
}
