//! Validation results: every failed rule with the JSON path of its field, like Zod's issue list.
//!
//! `#[derive(Event)]` generates the checks; this module holds what they report and the rule
//! functions the generated code calls (through `__private`).

use std::fmt;

/// One failed rule: where (`payload.changes`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidationIssue {
    /// The JSON path of the field, as it appears on the wire (`tenantId`, `payload.ticketId`).
    pub path: String,
    /// What is wrong, in words (`must not be empty`).
    pub message: String,
}

impl ValidationIssue {
    /// An issue at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every rule an event failed; never empty when returned as an error.
///
/// ```
/// use event_bus_core::{ValidationErrors, ValidationIssue};
///
/// let mut errors = ValidationErrors::new();
/// errors.push(ValidationIssue::new("tenantId", "must be a non-nil UUID"));
/// assert_eq!(errors.to_string(), "tenantId: must be a non-nil UUID");
/// assert!(errors.into_result().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    issues: Vec<ValidationIssue>,
}

impl ValidationErrors {
    /// No issues yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an issue.
    pub fn push(&mut self, issue: ValidationIssue) {
        self.issues.push(issue);
    }

    /// Records an issue at `path`.
    pub fn add(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(ValidationIssue::new(path, message));
    }

    /// The issues, in field order.
    pub fn issues(&self) -> &[ValidationIssue] {
        &self.issues
    }

    /// How many issues.
    pub fn len(&self) -> usize {
        self.issues.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.issues.is_empty()
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), Self> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Prefixes every path with `prefix.` (used to report payload fields as `payload.x`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        for issue in &mut self.issues {
            issue.path = format!("{prefix}.{}", issue.path);
        }
        self
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl IntoIterator for ValidationErrors {
    type Item = ValidationIssue;
    type IntoIter = std::vec::IntoIter<ValidationIssue>;
    fn into_iter(self) -> Self::IntoIter {
        self.issues.into_iter()
    }
}

/// The rule functions generated validation code calls. Not public API.
#[doc(hidden)]
pub mod rules {
    use std::borrow::Cow;
    use std::collections::{BTreeMap, HashMap};
    use std::fmt::Display;

    use uuid::Uuid;

    use super::ValidationErrors;

    /// A value with a length: strings (in characters), vectors, slices and maps.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` has no length, so `non_empty` and `length` do not apply to it",
        note = "`non_empty` and `length(min, max)` apply to strings, vectors, maps and `Option`s of them"
    )]
    pub trait HasLength {
        /// `None` when there is nothing to check (an absent `Option`).
        fn length(&self) -> Option<usize>;
    }

    impl HasLength for String {
        fn length(&self) -> Option<usize> {
            Some(self.chars().count())
        }
    }
    impl HasLength for str {
        fn length(&self) -> Option<usize> {
            Some(self.chars().count())
        }
    }
    impl<T> HasLength for Vec<T> {
        fn length(&self) -> Option<usize> {
            Some(self.len())
        }
    }
    impl<T> HasLength for [T] {
        fn length(&self) -> Option<usize> {
            Some(self.len())
        }
    }
    impl<K, V, S> HasLength for HashMap<K, V, S> {
        fn length(&self) -> Option<usize> {
            Some(self.len())
        }
    }
    impl<K, V> HasLength for BTreeMap<K, V> {
        fn length(&self) -> Option<usize> {
            Some(self.len())
        }
    }
    impl HasLength for serde_json::Map<String, serde_json::Value> {
        fn length(&self) -> Option<usize> {
            Some(self.len())
        }
    }
    impl<T: HasLength + ?Sized> HasLength for Box<T> {
        fn length(&self) -> Option<usize> {
            (**self).length()
        }
    }
    impl<T: HasLength> HasLength for Option<T> {
        fn length(&self) -> Option<usize> {
            self.as_ref().and_then(HasLength::length)
        }
    }

    /// A number `range(min, max)` can check.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a number, so `range` does not apply to it",
        note = "`range(min, max)` applies to integers, floats and `Option`s of them"
    )]
    pub trait InRange {
        /// The type of the bounds.
        type Bound: PartialOrd + Display;
        /// `None` when there is nothing to check (an absent `Option`).
        fn value(&self) -> Option<&Self::Bound>;
    }

    macro_rules! in_range {
        ($($t:ty),*) => {$(
            impl InRange for $t {
                type Bound = $t;
                fn value(&self) -> Option<&$t> {
                    Some(self)
                }
            }
        )*};
    }
    in_range!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);

    impl<T: InRange> InRange for Option<T> {
        type Bound = T::Bound;
        fn value(&self) -> Option<&T::Bound> {
            self.as_ref().and_then(InRange::value)
        }
    }

    /// Text that must hold a UUID.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not text, so `uuid` does not apply to it",
        note = "`uuid` applies to `String`, `&str` and `Option`s of them; a `uuid::Uuid` field needs no rule"
    )]
    pub trait UuidText {
        /// `None` when there is nothing to check (an absent `Option`).
        fn text(&self) -> Option<&str>;
    }
    impl UuidText for String {
        fn text(&self) -> Option<&str> {
            Some(self)
        }
    }
    impl UuidText for &str {
        fn text(&self) -> Option<&str> {
            Some(self)
        }
    }
    impl<T: UuidText> UuidText for Option<T> {
        fn text(&self) -> Option<&str> {
            self.as_ref().and_then(UuidText::text)
        }
    }

    /// A field that can carry the tenant: a `Uuid`, or text holding one.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot hold a tenant id",
        note = "the tenant field must be a `uuid::Uuid` (or a `String` holding one)"
    )]
    pub trait TenantField {
        /// The tenant, when the field holds a valid UUID.
        fn tenant(&self) -> Option<Uuid>;
        /// The tenant as written.
        fn text(&self) -> Cow<'_, str>;
    }
    impl TenantField for Uuid {
        fn tenant(&self) -> Option<Uuid> {
            Some(*self)
        }
        fn text(&self) -> Cow<'_, str> {
            Cow::Owned(self.hyphenated().to_string())
        }
    }
    impl TenantField for String {
        fn tenant(&self) -> Option<Uuid> {
            Uuid::parse_str(self).ok()
        }
        fn text(&self) -> Cow<'_, str> {
            Cow::Borrowed(self)
        }
    }

    /// The tenant of an event (nil when invalid).
    pub fn tenant_of<T: TenantField + ?Sized>(value: &T) -> Uuid {
        value.tenant().unwrap_or_else(Uuid::nil)
    }

    /// The tenant as written.
    pub fn tenant_text<T: TenantField + ?Sized>(value: &T) -> Cow<'_, str> {
        value.text()
    }

    /// The tenant must be a valid, non-nil UUID.
    pub fn tenant<T: TenantField + ?Sized>(value: &T, path: &str, errors: &mut ValidationErrors) {
        match value.tenant() {
            Some(id) if !id.is_nil() => {}
            Some(_) => errors.add(path, "tenant must not be the nil UUID"),
            None => errors.add(path, "tenant must be a valid UUID"),
        }
    }

    /// A tenant field marked `#[event(tenant(any_string))]`: text, any non-empty string.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot hold a tenant of any string",
        label = "`tenant(any_string)` needs a `String` field",
        note = "`#[event(tenant(any_string))]` applies to a `String` tenant field; a `uuid::Uuid` field takes `#[event(tenant)]`"
    )]
    pub trait AnyStringTenant {
        /// The tenant as written.
        fn as_tenant_str(&self) -> &str;
    }
    impl AnyStringTenant for String {
        fn as_tenant_str(&self) -> &str {
            self
        }
    }

    /// The tenant id of an any-string tenant: the UUID it holds, else its name-based UUID.
    pub fn any_string_tenant_of<T: AnyStringTenant + ?Sized>(value: &T) -> Uuid {
        crate::event::tenant_uuid(value.as_tenant_str())
    }

    /// The any-string tenant as written.
    pub fn any_string_tenant_text<T: AnyStringTenant + ?Sized>(value: &T) -> Cow<'_, str> {
        Cow::Borrowed(value.as_tenant_str())
    }

    /// An any-string tenant must not be empty.
    pub fn any_string_tenant<T: AnyStringTenant + ?Sized>(
        value: &T,
        path: &str,
        errors: &mut ValidationErrors,
    ) {
        if value.as_tenant_str().is_empty() {
            errors.add(path, "tenant must not be empty");
        }
    }

    /// `non_empty`.
    pub fn non_empty<T: HasLength + ?Sized>(value: &T, path: &str, errors: &mut ValidationErrors) {
        if value.length() == Some(0) {
            errors.add(path, "must not be empty");
        }
    }

    /// `length(min = .., max = ..)`.
    pub fn length<T: HasLength + ?Sized>(
        value: &T,
        min: Option<usize>,
        max: Option<usize>,
        path: &str,
        errors: &mut ValidationErrors,
    ) {
        let Some(len) = value.length() else { return };
        if let Some(min) = min {
            if len < min {
                errors.add(path, format!("length {len} is below the minimum {min}"));
            }
        }
        if let Some(max) = max {
            if len > max {
                errors.add(path, format!("length {len} is above the maximum {max}"));
            }
        }
    }

    /// `range(min = .., max = ..)`.
    pub fn range<T: InRange + ?Sized>(
        value: &T,
        min: Option<T::Bound>,
        max: Option<T::Bound>,
        path: &str,
        errors: &mut ValidationErrors,
    ) {
        let Some(v) = value.value() else { return };
        // A value no bound compares with (NaN) is out of range: one issue, not one per bound.
        let incomparable = |bound: &T::Bound| v.partial_cmp(bound).is_none();
        if min.as_ref().is_some_and(incomparable) || max.as_ref().is_some_and(incomparable) {
            errors.add(path, format!("{v} is not a number in range"));
            return;
        }
        let below = |bound: &T::Bound| v.partial_cmp(bound).is_some_and(|o| o.is_lt());
        let above = |bound: &T::Bound| v.partial_cmp(bound).is_some_and(|o| o.is_gt());
        if let Some(min) = min {
            if below(&min) {
                errors.add(path, format!("{v} is below the minimum {min}"));
            }
        }
        if let Some(max) = max {
            if above(&max) {
                errors.add(path, format!("{v} is above the maximum {max}"));
            }
        }
    }

    /// `uuid`.
    pub fn uuid<T: UuidText + ?Sized>(value: &T, path: &str, errors: &mut ValidationErrors) {
        if let Some(text) = value.text() {
            if Uuid::parse_str(text).is_err() {
                errors.add(path, "must be a UUID");
            }
        }
    }

    /// `custom = path`: the function returns `Err(message)` on failure.
    pub fn custom<T: ?Sized, E: Display>(
        value: &T,
        check: impl FnOnce(&T) -> Result<(), E>,
        path: &str,
        errors: &mut ValidationErrors,
    ) {
        if let Err(e) = check(value) {
            errors.add(path, e.to_string());
        }
    }
}
