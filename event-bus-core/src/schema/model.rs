//! The description of a payload that `#[derive(Event)]` writes, and the model it is read into
//! when a schema is exported.
//!
//! The derive writes the description as one string literal ([`EncodedSchema`]: field names,
//! types as the macro read them, rules, doc comments, in the compact format below), plus one
//! small function per field type the macro does not know. A string is one token to type-check
//! and nothing to evaluate, where the same description as nested constant expressions was
//! most of the derive's build cost. It is decoded into [`PayloadSchema`] only when a schema is
//! exported, never on the path of an event.
//!
//! Not public API: generated code reaches these types through `__private`, and they change
//! without notice (the macro and this decoder are always of the same version). Read schemas
//! through the functions of [`crate::schema`].
//!
//! # The format
//!
//! Numbers are decimal and end with `,`; a string is its length in bytes (a number) followed
//! by its bytes, so that every string of the model is a slice of the literal. A flag is `0` or
//! `1`.
//!
//! ```text
//! payload  = version:number none_as_null:flag deny_unknown_fields:flag container_default:flag
//!            doc:string field_count:number field*
//! field    = name:string doc:string presence tenant type rule_count:number rule*
//! presence = "A" (always) | "O" (optional) | "F" (flatten) | "C" (custom)
//! tenant   = "-" (not the tenant) | "U" (UUID) | "S" (any string)
//! type     = "b" | "i" name:string | "n" | "s" | "c" | "u" | "D" (DateTime) | "d" (NaiveDate)
//!          | "T" (NaiveDateTime) | "t" (NaiveTime) | "?" type (Option) | "[" type (array)
//!          | "{" type (set) | "m" type (map values) | "(" count:number type* (tuple)
//!          | "N" rust:string index:number (a named type: its schema function in `named`)
//! rule     = "e" (non_empty) | "l" min:opt_number max:opt_number (length) | "U" (uuid)
//!          | "r" min:opt_string max:opt_string (range) | "x" path:string (custom)
//! opt_x    = "-" | "+" x
//! ```

use serde_json::Value;

/// The schema function of a field type the macro does not know: the type's
/// [`Schema`](crate::schema::Schema), when it has one.
pub type NamedSchema = fn() -> Option<Value>;

/// A payload's description as `#[derive(Event)]` writes it: the encoded text (see the
/// [module docs](self)) and the schema functions of the named types it refers to by index.
#[derive(Debug, Clone, Copy)]
pub struct EncodedSchema {
    /// The description, in the format of the module docs; empty for an event nobody
    /// described.
    pub text: &'static str,
    /// The schema function of each named type, by the index the text gives it.
    pub named: &'static [NamedSchema],
}

impl EncodedSchema {
    /// An event whose payload nobody described (implemented by hand): any JSON object.
    pub const UNDESCRIBED: EncodedSchema = EncodedSchema {
        text: "",
        named: &[],
    };

    /// The description as a model. A text that does not decode (which the derive never
    /// writes) gives the undescribed payload, any JSON object, rather than a panic.
    pub fn decode(&self) -> PayloadSchema {
        if self.text.is_empty() {
            return PayloadSchema::UNDESCRIBED;
        }
        let mut reader = Reader {
            text: self.text,
            at: 0,
            named: self.named,
        };
        match reader.payload() {
            Some(payload) if reader.at == self.text.len() => payload,
            _ => PayloadSchema::UNDESCRIBED,
        }
    }
}

/// A named type that has no schema function (one naming `Self`): nothing is known.
pub fn no_schema() -> Option<Value> {
    None
}

/// The decoder of the format: each method reads one production, `None` when the text does
/// not follow it.
struct Reader {
    text: &'static str,
    at: usize,
    named: &'static [NamedSchema],
}

impl Reader {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.text.as_bytes().get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn number(&mut self) -> Option<u64> {
        let rest = self.text.get(self.at..)?;
        let end = rest.find(',')?;
        let n = rest[..end].parse().ok()?;
        self.at += end + 1;
        Some(n)
    }

    fn flag(&mut self) -> Option<bool> {
        match self.byte()? {
            b'0' => Some(false),
            b'1' => Some(true),
            _ => None,
        }
    }

    fn string(&mut self) -> Option<&'static str> {
        let len = usize::try_from(self.number()?).ok()?;
        let text: &'static str = self.text;
        let s = text.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(s)
    }

    /// A count of items, each at least one byte long (so a corrupt count cannot allocate
    /// more than the text's length).
    fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.number()?).ok()?;
        (n <= self.text.len() - self.at).then_some(n)
    }

    /// A count, then that many items read with `item`.
    fn list<T>(&mut self, item: fn(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let count = self.count()?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(item(self)?);
        }
        Some(items)
    }

    fn payload(&mut self) -> Option<PayloadSchema> {
        let version = u32::try_from(self.number()?).ok()?;
        let none_as_null = self.flag()?;
        let deny_unknown_fields = self.flag()?;
        let container_default = self.flag()?;
        let doc = self.string()?;
        let fields = self.list(Self::field)?;
        Some(PayloadSchema {
            doc,
            version,
            none_as_null,
            deny_unknown_fields,
            container_default,
            described: true,
            fields,
        })
    }

    fn field(&mut self) -> Option<FieldSchema> {
        let name = self.string()?;
        let doc = self.string()?;
        let presence = match self.byte()? {
            b'A' => Presence::Always,
            b'O' => Presence::Optional,
            b'F' => Presence::Flatten,
            b'C' => Presence::Custom,
            _ => return None,
        };
        let tenant = match self.byte()? {
            b'-' => None,
            b'U' => Some(TenantRule::Uuid),
            b'S' => Some(TenantRule::AnyString),
            _ => return None,
        };
        let ty = self.ty()?;
        let rules = self.list(Self::rule)?;
        Some(FieldSchema {
            name,
            doc,
            ty,
            presence,
            tenant,
            rules,
        })
    }

    fn ty(&mut self) -> Option<TypeSchema> {
        Some(match self.byte()? {
            b'b' => TypeSchema::Bool,
            b'i' => TypeSchema::Integer(self.string()?),
            b'n' => TypeSchema::Number,
            b's' => TypeSchema::String,
            b'c' => TypeSchema::Char,
            b'u' => TypeSchema::Uuid,
            b'D' => TypeSchema::DateTime,
            b'd' => TypeSchema::Date,
            b'T' => TypeSchema::NaiveDateTime,
            b't' => TypeSchema::NaiveTime,
            b'?' => TypeSchema::Option(Box::new(self.ty()?)),
            b'[' => TypeSchema::Array(Box::new(self.ty()?)),
            b'{' => TypeSchema::Set(Box::new(self.ty()?)),
            b'm' => TypeSchema::Map(Box::new(self.ty()?)),
            b'(' => TypeSchema::Tuple(self.list(Self::ty)?),
            b'N' => {
                let rust = self.string()?;
                let index = usize::try_from(self.number()?).ok()?;
                TypeSchema::Named {
                    rust,
                    schema: *self.named.get(index)?,
                }
            }
            _ => return None,
        })
    }

    fn rule(&mut self) -> Option<RuleSchema> {
        Some(match self.byte()? {
            b'e' => RuleSchema::NonEmpty,
            b'U' => RuleSchema::Uuid,
            b'l' => RuleSchema::Length {
                min: self.optional(Self::number)?,
                max: self.optional(Self::number)?,
            },
            b'r' => RuleSchema::Range {
                min: self.optional(Self::string)?,
                max: self.optional(Self::string)?,
            },
            b'x' => RuleSchema::Custom(self.string()?),
            _ => return None,
        })
    }

    /// `-` (none) or `+` and a value.
    fn optional<T>(&mut self, read: fn(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.byte()? {
            b'-' => Some(None),
            b'+' => read(self).map(Some),
            _ => None,
        }
    }
}

/// A payload struct: its fields and what its serde attributes say about unknown fields.
#[derive(Debug, Clone)]
pub struct PayloadSchema {
    /// The struct's doc comment (empty when none).
    pub doc: &'static str,
    /// `#[event(version = N)]` (1 by default): bumped to acknowledge a breaking change.
    pub version: u32,
    /// `#[event(none_as_null)]`: `None` fields are written as `null`.
    pub none_as_null: bool,
    /// `#[serde(deny_unknown_fields)]`: `additionalProperties: false`.
    pub deny_unknown_fields: bool,
    /// `#[serde(default)]` on the struct: no field is required on read.
    pub container_default: bool,
    /// Whether this description came from the derive (`false`: an event implemented by hand,
    /// described as any object).
    pub described: bool,
    /// The fields, in declaration order (skipped ones left out).
    pub fields: Vec<FieldSchema>,
}

impl PayloadSchema {
    /// An event whose payload nobody described: any JSON object.
    pub const UNDESCRIBED: PayloadSchema = PayloadSchema {
        doc: "",
        version: 1,
        none_as_null: false,
        deny_unknown_fields: false,
        container_default: false,
        described: false,
        fields: Vec::new(),
    };
}

/// One field of a payload.
#[derive(Debug, Clone)]
pub struct FieldSchema {
    /// The field's JSON name.
    pub name: &'static str,
    /// The field's doc comment (empty when none).
    pub doc: &'static str,
    /// Its type.
    pub ty: TypeSchema,
    /// What else decides whether it is required, nullable or present at all.
    pub presence: Presence,
    /// The tenant rule, when this is the tenant field.
    pub tenant: Option<TenantRule>,
    /// `#[event(validate(...))]`, in the order written.
    pub rules: Vec<RuleSchema>,
}

/// How a field is present on the wire, beyond its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Always written, needed on read (unless its type is an `Option`).
    Always,
    /// `#[serde(default)]`, `skip_serializing_if` or `skip_deserializing`: may be absent.
    Optional,
    /// `#[serde(flatten)]`: its fields are the payload's own.
    Flatten,
    /// `#[serde(with / serialize_with / deserialize_with)]`: written by user code, so its type
    /// says nothing about the JSON.
    Custom,
}

/// The rule on the tenant field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantRule {
    /// A non-nil UUID.
    Uuid,
    /// `#[event(tenant(any_string))]`: any non-empty string.
    AnyString,
}

/// A field's type, as the macro read it from the source.
#[derive(Debug, Clone)]
pub enum TypeSchema {
    /// `bool`
    Bool,
    /// An integer type, by name (`u32`).
    Integer(&'static str),
    /// `f32` / `f64`
    Number,
    /// `String`, `str`, `Cow<str>`
    String,
    /// `char`
    Char,
    /// `Uuid`
    Uuid,
    /// chrono's `DateTime<Tz>`: RFC 3339.
    DateTime,
    /// chrono's `NaiveDate`: `2026-11-26`.
    Date,
    /// chrono's `NaiveDateTime`: a date and time without offset.
    NaiveDateTime,
    /// chrono's `NaiveTime`: a time of day without offset.
    NaiveTime,
    /// `Option<T>`
    Option(Box<TypeSchema>),
    /// `Vec<T>`, `VecDeque<T>`, `[T]`, `[T; N]`
    Array(Box<TypeSchema>),
    /// `HashSet<T>`, `BTreeSet<T>`
    Set(Box<TypeSchema>),
    /// `HashMap<K, V>`, `BTreeMap<K, V>`, `serde_json::Map<String, V>`: keys are strings on the wire.
    Map(Box<TypeSchema>),
    /// A tuple: an array of fixed length.
    Tuple(Vec<TypeSchema>),
    /// Any other type, by its source text: described by its
    /// [`Schema`](crate::schema::Schema) impl when it has one, else any JSON.
    Named {
        /// The type as written.
        rust: &'static str,
        /// Its schema, when the type implements `Schema`.
        schema: NamedSchema,
    },
}

/// One `#[event(validate(...))]` rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleSchema {
    /// `non_empty`
    NonEmpty,
    /// `length(min, max)`: characters of a string, items of an array, entries of a map.
    Length {
        /// The lower bound.
        min: Option<u64>,
        /// The upper bound.
        max: Option<u64>,
    },
    /// `range(min, max)`: the bounds as written (`-5`, `1.5`).
    Range {
        /// The lower bound.
        min: Option<&'static str>,
        /// The upper bound.
        max: Option<&'static str>,
    },
    /// `uuid` on text.
    Uuid,
    /// `custom = path`: the function's path as written.
    Custom(&'static str),
}

/// Autoref specialisation for the fields of a type the macro does not know: the generated
/// code calls `(&SchemaOf::<T>::new()).__event_bus_schema()`, which picks
/// [`Schema::json_schema`](crate::schema::Schema) when `T` implements it and `None` otherwise.
pub struct SchemaOf<T: ?Sized>(core::marker::PhantomData<fn() -> Box<T>>);

impl<T: ?Sized> SchemaOf<T> {
    /// The tag of `T`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(core::marker::PhantomData)
    }
}

impl<T: ?Sized> core::fmt::Debug for SchemaOf<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SchemaOf")
    }
}

/// Chosen when `T` implements [`Schema`](crate::schema::Schema).
pub trait ViaSchema {
    /// `T`'s schema.
    fn __event_bus_schema(&self) -> Option<Value>;
}

impl<T: crate::schema::Schema + ?Sized> ViaSchema for SchemaOf<T> {
    fn __event_bus_schema(&self) -> Option<Value> {
        Some(super::json::nested(T::json_schema))
    }
}

/// Chosen otherwise: nothing is known.
pub trait ViaAny {
    /// `None`.
    fn __event_bus_schema(&self) -> Option<Value>;
}

impl<T: ?Sized> ViaAny for &SchemaOf<T> {
    fn __event_bus_schema(&self) -> Option<Value> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named() -> Option<Value> {
        Some(Value::Bool(true))
    }

    #[test]
    fn decodes_the_format() {
        let encoded = EncodedSchema {
            text: "2,0100,4,\
                   8,tenantId0,AUu0,\
                   4,tags3,DocA-?[s2,l-+8,e\
                   5,items0,O-N3,Foo0,1,r+1,1-\
                   4,pair0,C-(2,i3,u32b0,",
            named: &[named],
        };
        let payload = encoded.decode();
        assert!(payload.described);
        assert_eq!(payload.version, 2);
        assert!(!payload.none_as_null && payload.deny_unknown_fields && !payload.container_default);
        assert_eq!(payload.doc, "");
        let names: Vec<&str> = payload.fields.iter().map(|f| f.name).collect();
        assert_eq!(names, ["tenantId", "tags", "items", "pair"]);
        assert_eq!(payload.fields[0].tenant, Some(TenantRule::Uuid));
        assert_eq!(payload.fields[1].doc, "Doc");
        assert!(
            matches!(&payload.fields[1].ty, TypeSchema::Option(inner) if matches!(**inner, TypeSchema::Array(_)))
        );
        assert_eq!(
            payload.fields[1].rules,
            [
                RuleSchema::Length {
                    min: None,
                    max: Some(8)
                },
                RuleSchema::NonEmpty
            ]
        );
        assert_eq!(payload.fields[2].presence, Presence::Optional);
        let TypeSchema::Named { rust, schema } = &payload.fields[2].ty else {
            panic!("a named type")
        };
        assert_eq!((*rust, schema()), ("Foo", Some(Value::Bool(true))));
        assert_eq!(
            payload.fields[2].rules,
            [RuleSchema::Range {
                min: Some("1"),
                max: None
            }]
        );
        assert!(matches!(&payload.fields[3].ty, TypeSchema::Tuple(items) if items.len() == 2));
    }

    #[test]
    fn a_text_that_does_not_decode_is_undescribed() {
        for text in ["1,000", "1,0000,1,", "1,0000,1,1,x0,Z-s0,", "1,0000,0,junk"] {
            let payload = EncodedSchema { text, named: &[] }.decode();
            assert!(!payload.described, "{text:?}");
        }
        let out_of_range = EncodedSchema {
            text: "1,0000,1,1,x0,A-N1,T5,0,",
            named: &[],
        };
        assert!(!out_of_range.decode().described);
    }
}
