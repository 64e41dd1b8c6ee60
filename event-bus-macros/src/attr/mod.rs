//! Attribute parsing: `#[event(...)]` on structs and fields, the parts of `#[serde(...)]` that
//! decide JSON names, and the options of `#[subscriber(...)]`.
//!
//! Everything is read with `parse_nested_meta`; a bad key or value is recorded in the [`Ctxt`]
//! and parsing goes on, so that every mistake is reported at once. This module holds what every
//! parser shares: [`Once`] for keys given at most once, and the readers of `= value`. The
//! parsers themselves live beside it:
//!
//! - `symbol.rs`: the recognised names and the key lists messages show;
//! - `event.rs`: `#[event(...)]` and `#[serde(...)]` on the struct and its fields
//!   ([`Container`], [`Field`]);
//! - `rule.rs`: the validation rules of `#[event(validate(...))]` ([`Rule`]);
//! - `subscriber.rs`: the arguments of `#[subscriber("EVENT_TYPE", ...)]` ([`SubscriberArgs`]).

mod event;
mod rule;
mod subscriber;
mod symbol;

use proc_macro2::TokenTree;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr, Token};

use crate::ctxt::Ctxt;

pub(crate) use event::{Container, Field};
pub(crate) use rule::Rule;
pub(crate) use subscriber::{Ordering, Start, SubscriberArgs};

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

/// Checks a channel name (`#[event(channels(...))]`, `#[subscriber(channel = ...)]`): not
/// empty, no whitespace or control characters, as `event_bus_core::is_valid_channel` says.
/// Records an error on the literal and returns `false` otherwise.
fn check_channel(cx: &Ctxt, lit: &LitStr, example: &str) -> bool {
    let name = lit.value();
    if name.is_empty() {
        cx.error_spanned_by(
            lit,
            format!("a channel name must not be empty: write `{example}`"),
        );
        return false;
    }
    if let Some(bad) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        cx.error_spanned_by(
            lit,
            format!(
                "invalid channel name {name:?}: it contains {}; channel names have no whitespace \
                 or control characters, e.g. \"internal-notifications\" or \"emailservice::v7\"",
                if bad.is_whitespace() {
                    format!("whitespace ({bad:?})")
                } else {
                    format!("a control character ({bad:?})")
                },
            ),
        );
        return false;
    }
    true
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
