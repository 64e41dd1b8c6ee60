//! Attribute parsing: `#[event(...)]` on structs and fields, the parts of `#[serde(...)]` that
//! decide JSON names, and the options of `#[subscriber(...)]`.
//!
//! Everything is read with `parse_nested_meta`; a bad key or value is recorded in the [`Ctxt`]
//! and parsing goes on, so that every mistake is reported at once.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Lit, LitInt, LitStr, Token, UnOp};

use crate::case::RenameRule;
use crate::ctxt::Ctxt;

/// `#[event(...)]`
pub(crate) const EVENT: &str = "event";
/// `#[serde(...)]`
pub(crate) const SERDE: &str = "serde";

/// `#[event(name = "...")]` on the struct; `name = "..."` in `#[subscriber]`.
pub(crate) const NAME: &str = "name";
/// `#[event(tenant)]` on a field.
pub(crate) const TENANT: &str = "tenant";
/// `#[event(validate(...))]` on a field.
pub(crate) const VALIDATE: &str = "validate";

/// `validate(non_empty)`
pub(crate) const NON_EMPTY: &str = "non_empty";
/// `validate(length(min = .., max = ..))`
pub(crate) const LENGTH: &str = "length";
/// `validate(range(min = .., max = ..))`
pub(crate) const RANGE: &str = "range";
/// `validate(uuid)`
pub(crate) const UUID: &str = "uuid";
/// `validate(custom = path)`
pub(crate) const CUSTOM: &str = "custom";
/// A lower bound.
pub(crate) const MIN: &str = "min";
/// An upper bound.
pub(crate) const MAX: &str = "max";

/// `#[serde(rename = "...")]`
pub(crate) const RENAME: &str = "rename";
/// `#[serde(rename_all = "...")]`
pub(crate) const RENAME_ALL: &str = "rename_all";
/// `rename(serialize = "...")`
pub(crate) const SERIALIZE: &str = "serialize";
/// `rename(deserialize = "...")`
pub(crate) const DESERIALIZE: &str = "deserialize";

/// `#[subscriber(concurrency = N)]`
pub(crate) const CONCURRENCY: &str = "concurrency";
/// `#[subscriber(max_attempts = N)]`
pub(crate) const MAX_ATTEMPTS: &str = "max_attempts";
/// `#[subscriber(start = "earliest" | "latest")]`
pub(crate) const START: &str = "start";
/// `#[subscriber(ordering = "tenant" | "none")]`
pub(crate) const ORDERING: &str = "ordering";

const CONTAINER_KEYS: &str = "name";
const FIELD_KEYS: &str = "tenant, validate";
const RULES: &str =
    "non_empty, length(min = .., max = ..), range(min = .., max = ..), uuid, custom = path";
const SUBSCRIBER_KEYS: &str = "name, concurrency, max_attempts, start, ordering";

/// An attribute that may be given once; a second occurrence is a "duplicate" error.
pub(crate) struct Once<T> {
    what: &'static str,
    name: &'static str,
    value: Option<T>,
}

impl<T> Once<T> {
    fn new(what: &'static str, name: &'static str) -> Self {
        Self {
            what,
            name,
            value: None,
        }
    }

    /// Sets the value, or reports a duplicate at `tokens`.
    fn set<A: ToTokens>(&mut self, cx: &Ctxt, tokens: A, value: T) {
        if self.value.is_some() {
            cx.error_spanned_by(
                tokens,
                format!("duplicate {} `{}`; give it once", self.what, self.name),
            );
        } else {
            self.value = Some(value);
        }
    }

    fn get(self) -> Option<T> {
        self.value
    }
}

/// The name of a meta's key, for messages (`foo`, or `a::b`).
fn key_of(meta: &ParseNestedMeta<'_>) -> String {
    meta.path.to_token_stream().to_string().replace(' ', "")
}

/// Skips whatever follows a key we reject (`= value`, `(...)`), up to the next top-level
/// comma, so that the keys after it are still read.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    skip_to_comma(meta.input)
}

fn skip_to_comma(input: ParseStream<'_>) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ',') {
                return Ok(((), rest));
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

/// Whether the key stands alone (`tenant`, `non_empty`), i.e. is followed by `,` or nothing.
fn is_bare(meta: &ParseNestedMeta<'_>) -> bool {
    meta.input.is_empty() || meta.input.peek(Token![,])
}

/// Reads `= <expr>` after a key; `None` (with an error recorded) when there is no `=`.
fn value_expr(cx: &Ctxt, meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<Option<Expr>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(
            &meta.path,
            format!("`{}` needs a value: write `{example}`", key_of(meta)),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    Ok(Some(meta.value()?.parse::<Expr>()?))
}

/// Reads `= "text"` after a key; records an error unless the value is a string literal.
fn value_str(cx: &Ctxt, meta: &ParseNestedMeta<'_>, example: &str) -> syn::Result<Option<LitStr>> {
    Ok(match value_expr(cx, meta, example)? {
        Some(Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        })) => Some(s),
        Some(other) => {
            cx.error_spanned_by(
                other,
                format!(
                    "`{}` takes a string literal: write `{example}`",
                    key_of(meta)
                ),
            );
            None
        }
        None => None,
    })
}

/// Reads `= N` after a key; records an error unless it is an integer literal that fits `T`
/// and is at least `min`.
fn value_int<T>(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    min: T,
    example: &str,
) -> syn::Result<Option<(LitInt, T)>>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let key = key_of(meta);
    Ok(match value_expr(cx, meta, example)? {
        Some(Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        })) => match lit.base10_parse::<T>() {
            Ok(n) if n >= min => Some((lit, n)),
            Ok(_) => {
                cx.error_spanned_by(
                    &lit,
                    format!("`{key}` must be at least {min}: write `{example}`"),
                );
                None
            }
            Err(e) => {
                cx.error_spanned_by(
                    &lit,
                    format!("`{key}` is out of range ({e}): write `{example}`"),
                );
                None
            }
        },
        Some(other) => {
            cx.error_spanned_by(
                other,
                format!("`{key}` takes an integer literal of at least {min}: write `{example}`"),
            );
            None
        }
        None => None,
    })
}

/// `#[event(...)]` and `#[serde(...)]` on the struct.
pub(crate) struct Container {
    /// `#[event(name = "...")]`
    pub(crate) name: Option<LitStr>,
    /// `#[serde(rename_all = "...")]` (the deserialize side when split)
    pub(crate) rename_all: Option<RenameRule>,
}

impl Container {
    /// Reads the struct's attributes.
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut name = Once::new("attribute", NAME);
        let mut rename_all = None;
        for attr in attrs {
            if attr.path().is_ident(EVENT) {
                let parsed = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident(NAME) {
                        if let Some(lit) = value_str(cx, &meta, "#[event(name = \"TICKET_UPDATED\")]")? {
                            name.set(cx, &meta.path, lit);
                        }
                    } else if meta.path.is_ident(TENANT) || meta.path.is_ident(VALIDATE) {
                        cx.error_spanned_by(
                            &meta.path,
                            format!(
                                "`{}` is a field attribute: put #[event({})] on a field, not on the struct; \
                                 the struct takes: {CONTAINER_KEYS}",
                                key_of(&meta),
                                if meta.path.is_ident(TENANT) { "tenant" } else { "validate(...)" },
                            ),
                        );
                        skip_value(&meta)?;
                    } else {
                        cx.error_spanned_by(
                            &meta.path,
                            format!(
                                "unknown attribute `{}`; expected one of: {CONTAINER_KEYS} \
                                 (and on fields: {FIELD_KEYS})",
                                key_of(&meta)
                            ),
                        );
                        skip_value(&meta)?;
                    }
                    Ok(())
                });
                if let Err(e) = parsed {
                    cx.syn_error(e);
                }
            } else if attr.path().is_ident(SERDE) {
                if let Some(rule) = serde_name(attr, RENAME_ALL) {
                    rename_all = RenameRule::from_name(&rule.value());
                }
            }
        }
        Self {
            name: name.get(),
            rename_all,
        }
    }
}

/// One `#[event(validate(...))]` rule, with the span of its name for diagnostics.
pub(crate) enum Rule {
    /// `non_empty`
    NonEmpty(Span),
    /// `length(min = .., max = ..)`
    Length {
        span: Span,
        min: Option<LitInt>,
        max: Option<LitInt>,
    },
    /// `range(min = .., max = ..)`: number literals, possibly negated.
    Range {
        span: Span,
        min: Option<Box<Expr>>,
        max: Option<Box<Expr>>,
    },
    /// `uuid`
    Uuid(Span),
    /// `custom = path::to::function`
    Custom { span: Span, function: syn::Path },
}

/// `#[event(...)]` and `#[serde(...)]` on a field.
pub(crate) struct Field {
    /// The `tenant` key of `#[event(tenant)]`.
    pub(crate) tenant: Option<syn::Path>,
    /// The validation rules, in the order written.
    pub(crate) rules: Vec<Rule>,
    /// `#[serde(rename = "...")]` (the deserialize side when split)
    pub(crate) rename: Option<String>,
}

impl Field {
    /// Reads a field's attributes.
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut tenant = Once::new("attribute", TENANT);
        let mut rules = Vec::new();
        let mut seen: Vec<&'static str> = Vec::new();
        let mut rename = None;
        for attr in attrs {
            if attr.path().is_ident(EVENT) {
                let parsed = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident(TENANT) {
                        if !is_bare(&meta) {
                            cx.error_spanned_by(
                                &meta.path,
                                "`tenant` takes no value: write #[event(tenant)]",
                            );
                            skip_value(&meta)?;
                        }
                        tenant.set(cx, &meta.path, meta.path.clone());
                    } else if meta.path.is_ident(VALIDATE) {
                        if meta.input.peek(syn::token::Paren) {
                            meta.parse_nested_meta(|rule| parse_rule(cx, &rule, &mut seen, &mut rules))?;
                        } else {
                            cx.error_spanned_by(
                                &meta.path,
                                format!("`validate` takes a list of rules, e.g. #[event(validate(non_empty, length(max = 64)))]; rules: {RULES}"),
                            );
                            skip_value(&meta)?;
                        }
                    } else if meta.path.is_ident(NAME) {
                        cx.error_spanned_by(
                            &meta.path,
                            format!(
                                "`name` is a struct attribute: put #[event(name = \"...\")] on the struct; \
                                 fields take: {FIELD_KEYS}"
                            ),
                        );
                        skip_value(&meta)?;
                    } else {
                        cx.error_spanned_by(
                            &meta.path,
                            format!(
                                "unknown attribute `{}`; expected one of: {FIELD_KEYS} \
                                 (and on the struct: {CONTAINER_KEYS})",
                                key_of(&meta)
                            ),
                        );
                        skip_value(&meta)?;
                    }
                    Ok(())
                });
                if let Err(e) = parsed {
                    cx.syn_error(e);
                }
            } else if attr.path().is_ident(SERDE) {
                if let Some(name) = serde_name(attr, RENAME) {
                    rename = Some(name.value());
                }
            }
        }
        Self {
            tenant: tenant.get(),
            rules,
            rename,
        }
    }
}

fn parse_rule(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    seen: &mut Vec<&'static str>,
    rules: &mut Vec<Rule>,
) -> syn::Result<()> {
    let Some(name) = [NON_EMPTY, LENGTH, RANGE, UUID, CUSTOM]
        .into_iter()
        .find(|name| meta.path.is_ident(name))
    else {
        cx.error_spanned_by(
            &meta.path,
            format!(
                "unknown validation rule `{}`; expected one of: {RULES}",
                key_of(meta)
            ),
        );
        return skip_value(meta);
    };
    if seen.contains(&name) {
        cx.error_spanned_by(
            &meta.path,
            format!("duplicate rule `{name}` on this field; give it once (bounds go together: `{name}(min = .., max = ..)`)"),
        );
        return skip_value(meta);
    }
    seen.push(name);
    let span = meta.path.span();
    match name {
        NON_EMPTY | UUID => {
            if !is_bare(meta) {
                cx.error_spanned_by(
                    &meta.path,
                    format!("`{name}` takes no arguments: write validate({name})"),
                );
                return skip_value(meta);
            }
            rules.push(if name == UUID {
                Rule::Uuid(span)
            } else {
                Rule::NonEmpty(span)
            });
        }
        LENGTH => {
            if let Some((min, max)) = bounds(cx, meta, "length(min = 1, max = 64)", |cx, meta| {
                Ok(
                    value_int::<usize>(cx, meta, 0, "length(min = 1, max = 64)")?
                        .map(|(lit, _)| lit),
                )
            })? {
                if let (Some(lo), Some(hi)) = (&min, &max) {
                    let (a, b) = (lo.base10_parse::<usize>()?, hi.base10_parse::<usize>()?);
                    if a > b {
                        cx.error_spanned_by(
                            &meta.path,
                            format!("`length` has min {a} greater than max {b}"),
                        );
                    }
                }
                rules.push(Rule::Length { span, min, max });
            }
        }
        RANGE => {
            if let Some((min, max)) = bounds(cx, meta, "range(min = 0, max = 100)", range_bound)? {
                if let (Some(lo), Some(hi)) = (&min, &max) {
                    if let (Some(a), Some(b)) = (number(lo), number(hi)) {
                        if a > b {
                            cx.error_spanned_by(
                                &meta.path,
                                format!(
                                    "`range` has min {} greater than max {}",
                                    expr_text(lo),
                                    expr_text(hi)
                                ),
                            );
                        }
                    }
                }
                rules.push(Rule::Range { span, min, max });
            }
        }
        CUSTOM => {
            let example = "custom = path::to::check";
            match value_expr(cx, meta, example)? {
                Some(Expr::Path(p)) if p.qself.is_none() => rules.push(Rule::Custom {
                    span,
                    function: p.path,
                }),
                Some(Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                })) => match s.parse::<syn::Path>() {
                    Ok(function) => rules.push(Rule::Custom { span, function }),
                    Err(_) => cx.error_spanned_by(&s, format!("not a function path: write `{example}`")),
                },
                Some(other) => cx.error_spanned_by(
                    other,
                    format!("`custom` takes the path of a `fn(&FieldType) -> Result<(), impl Display>`: write `{example}`"),
                ),
                None => {}
            }
        }
        _ => unreachable!("rule names are listed above"),
    }
    Ok(())
}

type Bounds<T> = (Option<T>, Option<T>);

/// Reads `(min = .., max = ..)` (either or both) after a rule name.
fn bounds<T>(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    example: &str,
    mut read: impl FnMut(&Ctxt, &ParseNestedMeta<'_>) -> syn::Result<Option<T>>,
) -> syn::Result<Option<Bounds<T>>> {
    let rule = key_of(meta);
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(
            &meta.path,
            format!("`{rule}` needs bounds: write `{example}` (min, max or both)"),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let mut min = Once::new("bound", MIN);
    let mut max = Once::new("bound", MAX);
    let mut any = false;
    meta.parse_nested_meta(|bound| {
        let target = if bound.path.is_ident(MIN) {
            &mut min
        } else if bound.path.is_ident(MAX) {
            &mut max
        } else {
            cx.error_spanned_by(
                &bound.path,
                format!(
                    "unknown bound `{}` in `{rule}`; expected one of: min, max",
                    key_of(&bound)
                ),
            );
            return skip_value(&bound);
        };
        any = true;
        if let Some(value) = read(cx, &bound)? {
            target.set(cx, &bound.path, value);
        }
        Ok(())
    })?;
    if !any {
        cx.error_spanned_by(
            &meta.path,
            format!("`{rule}` needs at least one bound: write `{example}` (min, max or both)"),
        );
        return Ok(None);
    }
    Ok(Some((min.get(), max.get())))
}

/// A `range` bound: a number literal, possibly negated.
fn range_bound(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Box<Expr>>> {
    let Some(expr) = value_expr(cx, meta, "range(min = 0, max = 100)")? else {
        return Ok(None);
    };
    if number(&expr).is_some() {
        Ok(Some(Box::new(expr)))
    } else {
        cx.error_spanned_by(
            &expr,
            "`range` bounds are number literals, e.g. `range(min = -10, max = 2.5)`",
        );
        Ok(None)
    }
}

/// The value of a number literal (`3`, `2.5`, `-1`), for comparing bounds.
fn number(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_digits().parse().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_digits().parse().ok(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) if matches!(**expr, Expr::Lit(_)) => number(expr).map(|n| -n),
        _ => None,
    }
}

fn expr_text(expr: &Expr) -> String {
    expr.to_token_stream().to_string().replace(' ', "")
}

/// The string of `#[serde(key = "...")]` or of `#[serde(key(deserialize = "..."))]` (the
/// deserialize name: what incoming JSON, whose validation errors users read, calls it).
///
/// Anything else in `#[serde]` is skipped, and malformed input is left to serde to report.
fn serde_name(attr: &Attribute, key: &str) -> Option<LitStr> {
    let mut found = None;
    let _ = attr.parse_nested_meta(|meta| {
        if !meta.path.is_ident(key) {
            return skip_value(&meta);
        }
        if meta.input.peek(Token![=]) {
            if let Ok(s) = meta.value()?.parse::<LitStr>() {
                found = Some(s);
            }
            return skip_value(&meta);
        }
        if meta.input.peek(syn::token::Paren) {
            let mut ser = None;
            let mut de = None;
            meta.parse_nested_meta(|side| {
                if side.path.is_ident(SERIALIZE) {
                    ser = Some(side.value()?.parse::<LitStr>()?);
                } else if side.path.is_ident(DESERIALIZE) {
                    de = Some(side.value()?.parse::<LitStr>()?);
                } else {
                    skip_value(&side)?;
                }
                Ok(())
            })?;
            if let Some(s) = de.or(ser) {
                found = Some(s);
            }
            return Ok(());
        }
        skip_value(&meta)
    });
    found
}

/// `start = "earliest" | "latest"`.
#[derive(Clone, Copy)]
pub(crate) enum Start {
    Earliest,
    Latest,
}

/// `ordering = "tenant" | "none"`.
#[derive(Clone, Copy)]
pub(crate) enum Ordering {
    PerTenant,
    None,
}

/// The options of `#[subscriber("EVENT_TYPE", ...)]`, each with the token it came from.
#[derive(Default)]
pub(crate) struct SubscriberArgs {
    /// The event-type string.
    pub(crate) event_type: Option<LitStr>,
    /// `name = "..."`
    pub(crate) name: Option<LitStr>,
    /// `concurrency = N`
    pub(crate) concurrency: Option<(LitInt, u32)>,
    /// `max_attempts = N`
    pub(crate) max_attempts: Option<(LitInt, u32)>,
    /// `start = "..."`
    pub(crate) start: Option<(LitStr, Start)>,
    /// `ordering = "..."`
    pub(crate) ordering: Option<(LitStr, Ordering)>,
}

const EVENT_TYPE_EXAMPLE: &str = "#[subscriber(\"TICKET_UPDATED\")]";

impl SubscriberArgs {
    /// Reads `"EVENT_TYPE", key = value, ...`.
    pub(crate) fn parse(cx: &Ctxt, args: TokenStream) -> Self {
        let mut out = Self::default();
        let mut tokens: Vec<TokenTree> = args.into_iter().collect();
        let options_start = match tokens.first() {
            None => {
                cx.error_at(
                    Span::call_site(),
                    format!("missing the event type: write {EVENT_TYPE_EXAMPLE}"),
                );
                0
            }
            Some(TokenTree::Literal(lit)) => {
                match syn::parse2::<LitStr>(lit.to_token_stream()) {
                    Ok(s) => out.event_type = Some(s),
                    Err(_) => cx.error_spanned_by(
                        lit,
                        format!(
                            "the event type must be a string literal: write {EVENT_TYPE_EXAMPLE}"
                        ),
                    ),
                }
                1
            }
            Some(TokenTree::Ident(_)) if matches!(tokens.get(1), Some(TokenTree::Punct(p)) if p.as_char() == '=') =>
            {
                cx.error_at(
                    Span::call_site(),
                    format!(
                        "missing the event type: it comes first, as a string, e.g. \
                         #[subscriber(\"TICKET_UPDATED\", {} = ...)]",
                        tokens[0]
                    ),
                );
                0
            }
            Some(first) => {
                cx.error_spanned_by(
                    first,
                    format!("the event type must be a string literal: write {EVENT_TYPE_EXAMPLE}"),
                );
                tokens
                    .iter()
                    .position(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ','))
                    .unwrap_or(tokens.len())
            }
        };
        if options_start > 0 {
            match tokens.get(options_start) {
                None => {}
                Some(TokenTree::Punct(p)) if p.as_char() == ',' => {}
                Some(other) => cx.error_spanned_by(
                    other,
                    "expected `,` after the event type, then options: `name = \"...\"`, `concurrency = N`, ...",
                ),
            }
        }
        let rest: TokenStream = tokens
            .drain(options_start.min(tokens.len())..)
            .skip_while(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ','))
            .collect();
        // (a comma right after the event type was skipped above; a stray one elsewhere is
        // syn's to report.)
        let parser = syn::meta::parser(|meta| out.option(cx, &meta));
        if let Err(e) = syn::parse::Parser::parse2(parser, rest) {
            cx.syn_error(e);
        }
        out
    }

    fn option(&mut self, cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let duplicate = |set: bool| {
            if set {
                cx.error_spanned_by(
                    &meta.path,
                    format!("duplicate option `{}`; give it once", key_of(meta)),
                );
            }
            set
        };
        if meta.path.is_ident(NAME) {
            let example = "name = \"ticket-email\"";
            if let Some(lit) = value_str(cx, meta, example)? {
                if lit.value().trim().is_empty() {
                    cx.error_spanned_by(
                        &lit,
                        format!("the subscriber name must not be empty: write `{example}`"),
                    );
                } else if !duplicate(self.name.is_some()) {
                    self.name = Some(lit);
                }
            }
        } else if meta.path.is_ident(CONCURRENCY) {
            if let Some(v) = value_int::<u32>(cx, meta, 1, "concurrency = 4")? {
                if !duplicate(self.concurrency.is_some()) {
                    self.concurrency = Some(v);
                }
            }
        } else if meta.path.is_ident(MAX_ATTEMPTS) {
            if let Some(v) = value_int::<u32>(cx, meta, 1, "max_attempts = 5")? {
                if !duplicate(self.max_attempts.is_some()) {
                    self.max_attempts = Some(v);
                }
            }
        } else if meta.path.is_ident(START) {
            let example = "start = \"earliest\"` or `start = \"latest\"";
            if let Some(lit) = value_str(cx, meta, example)? {
                let start = match lit.value().as_str() {
                    "earliest" => Some(Start::Earliest),
                    "latest" => Some(Start::Latest),
                    other => {
                        cx.error_spanned_by(
                            &lit,
                            format!("unknown start {other:?}; expected one of: \"earliest\" (every event still in the stream), \"latest\" (only new events)"),
                        );
                        None
                    }
                };
                if let Some(start) = start {
                    if !duplicate(self.start.is_some()) {
                        self.start = Some((lit, start));
                    }
                }
            }
        } else if meta.path.is_ident(ORDERING) {
            let example = "ordering = \"tenant\"` or `ordering = \"none\"";
            if let Some(lit) = value_str(cx, meta, example)? {
                let ordering = match lit.value().as_str() {
                    "tenant" => Some(Ordering::PerTenant),
                    "none" => Some(Ordering::None),
                    other => {
                        cx.error_spanned_by(
                            &lit,
                            format!("unknown ordering {other:?}; expected one of: \"tenant\" (one event per tenant at a time, in order), \"none\""),
                        );
                        None
                    }
                };
                if let Some(ordering) = ordering {
                    if !duplicate(self.ordering.is_some()) {
                        self.ordering = Some((lit, ordering));
                    }
                }
            }
        } else {
            cx.error_spanned_by(
                &meta.path,
                format!(
                    "unknown option `{}`; expected one of: {SUBSCRIBER_KEYS}",
                    key_of(meta)
                ),
            );
            skip_value(meta)?;
        }
        Ok(())
    }
}
