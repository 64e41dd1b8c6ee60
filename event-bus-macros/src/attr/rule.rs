//! The validation rules of `#[event(validate(...))]` on a field: `non_empty`, `length`,
//! `range`, `uuid` and `custom`, each checked for its arguments (bounds in order, literals of
//! the right kind) and kept with the span of its name for diagnostics.

use proc_macro2::Span;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitInt, UnOp};

use super::symbol::{CUSTOM, LENGTH, MAX, MIN, NON_EMPTY, RANGE, RULES, UUID};
use super::{is_bare, key_of, skip_value, value_expr, value_int, Once};
use crate::ctxt::Ctxt;

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

pub(super) fn parse_rule(
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
