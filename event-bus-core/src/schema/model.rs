//! The static description of a payload that `#[derive(Event)]` writes: constant data (field
//! names, types as the macro read them, rules, doc comments), no code per type beyond one small
//! function per field of a type the macro does not know. JSON is built from it only when a
//! schema is exported.
//!
//! Not public API: generated code reaches these types through `__private`, and they change
//! without notice. Read schemas through the functions of [`crate::schema`].

use serde_json::Value;

/// A payload struct: its fields and what its serde attributes say about unknown fields.
#[derive(Debug, Clone, Copy)]
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
    pub fields: &'static [FieldSchema],
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
        fields: &[],
    };
}

/// One field of a payload.
#[derive(Debug, Clone, Copy)]
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
    pub rules: &'static [RuleSchema],
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
#[derive(Debug, Clone, Copy)]
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
    Option(&'static TypeSchema),
    /// `Vec<T>`, `VecDeque<T>`, `[T]`, `[T; N]`
    Array(&'static TypeSchema),
    /// `HashSet<T>`, `BTreeSet<T>`
    Set(&'static TypeSchema),
    /// `HashMap<K, V>`, `BTreeMap<K, V>`, `serde_json::Map<String, V>`: keys are strings on the wire.
    Map(&'static TypeSchema),
    /// A tuple: an array of fixed length.
    Tuple(&'static [TypeSchema]),
    /// Any other type, by its source text: described by its
    /// [`Schema`](crate::schema::Schema) impl when it has one, else any JSON.
    Named {
        /// The type as written.
        rust: &'static str,
        /// Its schema, when the type implements `Schema`.
        schema: fn() -> Option<Value>,
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
