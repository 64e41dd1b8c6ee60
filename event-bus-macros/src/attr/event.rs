//! `#[event(...)]` and `#[serde(...)]` on the struct and its fields: what `#[derive(Event)]`
//! reads before it checks the struct and generates code.
//!
//! Of `#[serde(...)]` only the names matter (`rename_all`, `rename`): validation issues name
//! fields by their JSON names. Everything else in `#[serde]` is serde's to read and report.

use syn::{Attribute, LitStr, Token};

use super::rule::{parse_rule, Rule};
use super::symbol::{
    CONTAINER_KEYS, DESERIALIZE, EVENT, FIELD_KEYS, NAME, RENAME, RENAME_ALL, RULES, SERDE,
    SERIALIZE, TENANT, VALIDATE,
};
use super::{is_bare, key_of, skip_value, value_str, Once};
use crate::case::RenameRule;
use crate::ctxt::Ctxt;

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
