//! `#[event(...)]` and `#[serde(...)]` on the struct and its fields: what `#[derive(Event)]`
//! reads before it checks the struct and generates code.
//!
//! Of `#[serde(...)]` only the names matter (`rename_all`, `rename`): validation issues name
//! fields by their JSON names. Everything else in `#[serde]` is serde's to read and report.

use proc_macro2::{Group, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, Lit, LitStr, Token};

use super::rule::{parse_rule, Rule};
use super::symbol::{
    ANY_STRING, CHANNELS, CONTAINER_KEYS, DESERIALIZE, EVENT, FIELD_KEYS, NAME, NONE_AS_NULL,
    RENAME, RENAME_ALL, RULES, SERDE, SERIALIZE, TENANT, VALIDATE, VERSION,
};
use super::{check_channel, is_bare, key_of, skip_value, value_int, value_str, Once};
use crate::case::RenameRule;
use crate::ctxt::Ctxt;

/// `#[event(...)]` and `#[serde(...)]` on the struct.
pub(crate) struct Container {
    /// `#[event(name = "...")]`
    pub(crate) name: Option<LitStr>,
    /// `#[event(channels("global", ...))]`: checked, at least one, no duplicates.
    pub(crate) channels: Option<Vec<LitStr>>,
    /// The `none_as_null` key of `#[event(none_as_null)]`.
    pub(crate) none_as_null: Option<syn::Path>,
    /// `#[serde(rename_all = "...")]` (the deserialize side when split)
    pub(crate) rename_all: Option<RenameRule>,
    /// `#[event(version = N)]`: the schema version (at least 1).
    pub(crate) version: Option<u32>,
}

const CHANNELS_EXAMPLE: &str = "#[event(channels(\"global\", \"internal-notifications\"))]";

impl Container {
    /// Reads the struct's attributes.
    pub(crate) fn from_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut name = Once::new("attribute", NAME);
        let mut channels = Once::new("attribute", CHANNELS);
        let mut none_as_null = Once::new("attribute", NONE_AS_NULL);
        let mut version = Once::new("attribute", VERSION);
        let mut rename_all = None;
        for attr in attrs {
            if attr.path().is_ident(EVENT) {
                let parsed = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident(NAME) {
                        if let Some(lit) = value_str(cx, &meta, "#[event(name = \"TICKET_UPDATED\")]")? {
                            name.set(cx, &meta.path, lit);
                        }
                    } else if meta.path.is_ident(CHANNELS) {
                        if let Some(list) = parse_channels(cx, &meta)? {
                            channels.set(cx, &meta.path, list);
                        }
                    } else if meta.path.is_ident(NONE_AS_NULL) {
                        if !is_bare(&meta) {
                            cx.error_spanned_by(
                                &meta.path,
                                "`none_as_null` takes no value: write #[event(none_as_null)]",
                            );
                            skip_value(&meta)?;
                        }
                        none_as_null.set(cx, &meta.path, meta.path.clone());
                    } else if meta.path.is_ident(VERSION) {
                        if let Some((_, n)) = value_int::<u32>(cx, &meta, 1, "#[event(version = 2)]")? {
                            version.set(cx, &meta.path, n);
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
            channels: channels.get(),
            none_as_null: none_as_null.get(),
            rename_all,
            version: version.get(),
        }
    }
}

/// `#[event(tenant)]` or `#[event(tenant(any_string))]` on a field.
pub(crate) struct Tenant {
    /// The attribute's tokens (`tenant`, or `tenant(any_string)`), for diagnostics.
    pub(crate) tokens: TokenStream,
    /// `any_string`: any non-empty string is a tenant, not only a UUID.
    pub(crate) any_string: bool,
}

/// `#[event(...)]` and `#[serde(...)]` on a field.
pub(crate) struct Field {
    /// `#[event(tenant)]` or `#[event(tenant(any_string))]`.
    pub(crate) tenant: Option<Tenant>,
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
                        if let Some(parsed) = parse_tenant(cx, &meta)? {
                            tenant.set(cx, &meta.path, parsed);
                        }
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
                    } else if meta.path.is_ident(NAME)
                        || meta.path.is_ident(CHANNELS)
                        || meta.path.is_ident(NONE_AS_NULL)
                        || meta.path.is_ident(VERSION)
                    {
                        let example = if meta.path.is_ident(NAME) {
                            "name = \"...\""
                        } else if meta.path.is_ident(CHANNELS) {
                            "channels(\"...\")"
                        } else if meta.path.is_ident(VERSION) {
                            "version = 2"
                        } else {
                            "none_as_null"
                        };
                        cx.error_spanned_by(
                            &meta.path,
                            format!(
                                "`{}` is a struct attribute: put #[event({example})] on the struct; \
                                 fields take: {FIELD_KEYS}",
                                key_of(&meta),
                            ),
                        );
                        skip_value(&meta)?;
                    } else if meta.path.is_ident(ANY_STRING) {
                        cx.error_spanned_by(
                            &meta.path,
                            "`any_string` qualifies the tenant: write #[event(tenant(any_string))]",
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

/// Reads `tenant` or `tenant(any_string)`; `None` (with an error recorded) when malformed.
fn parse_tenant(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Tenant>> {
    const USAGE: &str =
        "write #[event(tenant)] (a UUID) or #[event(tenant(any_string))] (any non-empty string)";
    if is_bare(meta) {
        return Ok(Some(Tenant {
            tokens: meta.path.to_token_stream(),
            any_string: false,
        }));
    }
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(&meta.path, format!("`tenant` takes no value: {USAGE}"));
        skip_value(meta)?;
        return Ok(None);
    }
    let group: Group = meta.input.fork().parse()?;
    let mut tokens = meta.path.to_token_stream();
    group.to_tokens(&mut tokens);
    if group.stream().is_empty() {
        meta.input.parse::<Group>()?;
        cx.error_spanned_by(&tokens, format!("`tenant()` names no option: {USAGE}"));
        return Ok(None);
    }
    let mut any_string = Once::new("option", ANY_STRING);
    let mut ok = true;
    meta.parse_nested_meta(|option| {
        if option.path.is_ident(ANY_STRING) && is_bare(&option) {
            any_string.set(cx, &option.path, ());
        } else {
            ok = false;
            let what = if option.path.is_ident(ANY_STRING) {
                "`any_string` takes no value".to_owned()
            } else {
                format!(
                    "unknown tenant option `{}`, expected `{ANY_STRING}`",
                    key_of(&option)
                )
            };
            cx.error_spanned_by(&option.path, format!("{what}; {USAGE}"));
            skip_value(&option)?;
        }
        Ok(())
    })?;
    let any_string = any_string.get().is_some();
    Ok((ok && any_string).then_some(Tenant { tokens, any_string }))
}

/// Reads `channels("a", "b", ...)`: string literals, each a valid channel name, at least one,
/// no duplicates. `None` when the list could not be read at all.
fn parse_channels(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Vec<LitStr>>> {
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(
            &meta.path,
            format!("`channels` takes a list of channel names: write {CHANNELS_EXAMPLE}"),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let content;
    syn::parenthesized!(content in meta.input);
    let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    if items.is_empty() {
        cx.error_spanned_by(
            &meta.path,
            format!("`channels` needs at least one channel: write {CHANNELS_EXAMPLE}"),
        );
        return Ok(None);
    }
    let mut channels: Vec<LitStr> = Vec::with_capacity(items.len());
    for item in items {
        let lit = match item {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => lit,
            other => {
                cx.error_spanned_by(
                    &other,
                    format!("a channel is a string literal: write {CHANNELS_EXAMPLE}"),
                );
                continue;
            }
        };
        if !check_channel(cx, &lit, CHANNELS_EXAMPLE) {
            continue;
        }
        if channels.iter().any(|seen| seen.value() == lit.value()) {
            cx.error_spanned_by(
                &lit,
                format!(
                    "duplicate channel {:?}; list each channel once",
                    lit.value()
                ),
            );
            continue;
        }
        channels.push(lit);
    }
    Ok(Some(channels))
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
