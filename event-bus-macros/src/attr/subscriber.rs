//! The arguments of `#[subscriber("EVENT_TYPE", key = value, ...)]`: the event-type string
//! first, then the options, each kept with the token it came from so that code generation can
//! span what it emits on it.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{LitInt, LitStr};

use super::symbol::{
    CHANNEL, CONCURRENCY, DEDUPE, MAX_ATTEMPTS, NAME, ORDERING, START, SUBSCRIBER_KEYS,
};
use super::{check_channel, key_of, skip_value, value_int, value_str};
use crate::ctxt::Ctxt;

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
    /// `channel = "..."`: checked.
    pub(crate) channel: Option<LitStr>,
    /// `concurrency = N`
    pub(crate) concurrency: Option<(LitInt, u32)>,
    /// `max_attempts = N`
    pub(crate) max_attempts: Option<(LitInt, u32)>,
    /// `start = "..."`
    pub(crate) start: Option<(LitStr, Start)>,
    /// `ordering = "..."`
    pub(crate) ordering: Option<(LitStr, Ordering)>,
    /// `dedupe = "24h"`: the window in seconds.
    pub(crate) dedupe: Option<(LitStr, u64)>,
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
        } else if meta.path.is_ident(CHANNEL) {
            let example = "channel = \"emailservice::v7\"";
            if let Some(lit) = value_str(cx, meta, example)? {
                if check_channel(cx, &lit, example) && !duplicate(self.channel.is_some()) {
                    self.channel = Some(lit);
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
        } else if meta.path.is_ident(DEDUPE) {
            let example = "dedupe = \"24h\"";
            if let Some(lit) = value_str(cx, meta, example)? {
                match parse_duration(&lit.value()) {
                    Ok(secs) => {
                        if !duplicate(self.dedupe.is_some()) {
                            self.dedupe = Some((lit, secs));
                        }
                    }
                    Err(why) => cx.error_spanned_by(
                        &lit,
                        format!("{why}: write a whole number and a unit, s, m, h or d, like `{example}`"),
                    ),
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

/// A duration written as a whole number and a unit (`30s`, `15m`, `24h`, `7d`), in seconds; at
/// least one second.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "" => return Err(format!("the duration {text:?} has no unit")),
        other => return Err(format!("unknown unit {other:?} in the duration {text:?}")),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("the duration {text:?} does not start with a whole number"))?;
    if n == 0 {
        return Err(format!("the duration {text:?} is zero"));
    }
    n.checked_mul(unit_secs)
        .filter(|secs| *secs <= u64::from(u32::MAX))
        .ok_or_else(|| format!("the duration {text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        for bad in [
            "",
            "24",
            "h",
            "0h",
            "1.5h",
            "-1h",
            "24 h",
            "24hours",
            "99999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }
}
