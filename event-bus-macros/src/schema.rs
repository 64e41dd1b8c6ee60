//! The schema part of `#[derive(Event)]`: the payload's description as one encoded string
//! (`__private::EncodedSchema`), which `event_bus_core::schema` decodes and turns into JSON
//! Schema only when one is exported. Types are read from the source text; a type this module
//! does not know is described by its `Schema` impl, looked up through autoref specialisation in
//! one small function per such type, and is any JSON when it has none (never a compile error).

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::{
    Attribute, Expr, ExprLit, ExprUnary, GenericArgument, Lit, LitStr, PathArguments, Type, UnOp,
};

use crate::attr::Rule;

/// What the schema needs to know about one field, beyond its type.
pub(crate) struct SchemaField<'a> {
    /// The field's JSON name.
    pub(crate) json_name: &'a str,
    pub(crate) ty: &'a Type,
    pub(crate) attrs: &'a [Attribute],
    pub(crate) rules: &'a [Rule],
    /// `None`: not the tenant; `Some(any_string)`: the tenant.
    pub(crate) tenant: Option<bool>,
}

/// The payload's description: `&'static __private::EncodedSchema`, one string literal in the
/// format of `event_bus_core::schema::model` (which decodes it when a schema is exported) and a
/// schema function per distinct type the macro does not know. The description used to be
/// nested constant expressions; as one literal it costs next to nothing to type-check and
/// evaluate.
pub(crate) fn payload(
    struct_attrs: &[Attribute],
    version: u32,
    none_as_null: bool,
    fields: &[SchemaField<'_>],
) -> TokenStream {
    let container = serde_flags(struct_attrs);
    let mut out = Encoder::default();
    out.number(u64::from(version));
    out.flag(none_as_null);
    out.flag(container.deny_unknown_fields);
    out.flag(container.default);
    out.string(&doc(struct_attrs));
    let described: Vec<(&SchemaField<'_>, SerdeFlags)> = fields
        .iter()
        .map(|field| (field, serde_flags(field.attrs)))
        .filter(|(_, flags)| !flags.skip_serializing)
        .collect();
    out.number(described.len() as u64);
    for (field, flags) in described {
        out.string(field.json_name);
        out.string(&doc(field.attrs));
        out.text.push(if flags.flatten {
            'F'
        } else if flags.with {
            'C'
        } else if flags.default || flags.skip_serializing_if || flags.skip_deserializing {
            'O'
        } else {
            'A'
        });
        out.text.push(match field.tenant {
            None => '-',
            Some(false) => 'U',
            Some(true) => 'S',
        });
        out.ty(field.ty);
        out.number(field.rules.len() as u64);
        for rule in field.rules {
            out.rule(rule);
        }
    }
    let text = LitStr::new(&out.text, Span::call_site());
    let named = out.named.iter().map(|(_, function)| function);
    quote! {
        &::event_bus_core::__private::EncodedSchema {
            text: #text,
            named: &[#(#named),*],
        }
    }
}

/// The encoded description being written, and the schema functions of the named types in it.
#[derive(Default)]
struct Encoder {
    text: String,
    /// Each distinct named type's source text and its schema function.
    named: Vec<(String, TokenStream)>,
}

impl Encoder {
    fn number(&mut self, n: u64) {
        self.text.push_str(&n.to_string());
        self.text.push(',');
    }

    fn flag(&mut self, flag: bool) {
        self.text.push(if flag { '1' } else { '0' });
    }

    fn string(&mut self, s: &str) {
        self.number(s.len() as u64);
        self.text.push_str(s);
    }

    /// `-`, or `+` and the value.
    fn optional<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            Some(value) => {
                self.text.push('+');
                write(self, value);
            }
            None => self.text.push('-'),
        }
    }

    fn rule(&mut self, rule: &Rule) {
        match rule {
            Rule::NonEmpty(_) => self.text.push('e'),
            Rule::Uuid(_) => self.text.push('U'),
            Rule::Length { min, max, .. } => {
                let bound = |lit: &Option<syn::LitInt>| {
                    lit.as_ref().and_then(|l| l.base10_parse::<u64>().ok())
                };
                self.text.push('l');
                self.optional(bound(min), Self::number);
                self.optional(bound(max), Self::number);
            }
            Rule::Range { min, max, .. } => {
                self.text.push('r');
                self.optional(min.as_deref().and_then(number_text), |out, n| {
                    out.string(&n)
                });
                self.optional(max.as_deref().and_then(number_text), |out, n| {
                    out.string(&n)
                });
            }
            Rule::Custom { function, .. } => {
                let path = function.to_token_stream().to_string().replace(' ', "");
                self.text.push('x');
                self.string(&path);
            }
        }
    }

    /// A type, as the macro reads it from the source.
    fn ty(&mut self, ty: &Type) {
        match ty {
            Type::Paren(t) => return self.ty(&t.elem),
            Type::Group(t) => return self.ty(&t.elem),
            Type::Reference(t) => return self.ty(&t.elem),
            Type::Slice(t) => {
                self.text.push('[');
                return self.ty(&t.elem);
            }
            Type::Array(t) => {
                self.text.push('[');
                return self.ty(&t.elem);
            }
            Type::Tuple(t) if !t.elems.is_empty() => {
                self.text.push('(');
                self.number(t.elems.len() as u64);
                for item in &t.elems {
                    self.ty(item);
                }
                return;
            }
            Type::Path(path) if path.qself.is_none() => {
                if let Some(last) = path.path.segments.last() {
                    let name = last.ident.to_string();
                    let args = type_args(&last.arguments);
                    let (tag, inner) = match (name.as_str(), args.as_slice()) {
                        ("bool", []) => ('b', None),
                        (
                            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32"
                            | "u64" | "u128" | "usize",
                            [],
                        ) => {
                            self.text.push('i');
                            return self.string(&name);
                        }
                        ("f32" | "f64", []) => ('n', None),
                        ("String" | "str", []) => ('s', None),
                        ("char", []) => ('c', None),
                        ("Uuid", []) => ('u', None),
                        ("DateTime", [_]) => ('D', None),
                        ("NaiveDate", []) => ('d', None),
                        ("NaiveDateTime", []) => ('T', None),
                        ("NaiveTime", []) => ('t', None),
                        ("Option", [inner]) => ('?', Some(*inner)),
                        ("Vec" | "VecDeque" | "LinkedList", [item]) => ('[', Some(*item)),
                        ("HashSet" | "BTreeSet" | "IndexSet", [item, ..]) => ('{', Some(*item)),
                        ("HashMap" | "BTreeMap" | "IndexMap" | "Map", [_, value, ..]) => {
                            ('m', Some(*value))
                        }
                        ("Box" | "Arc" | "Rc" | "Cow", [inner]) => return self.ty(inner),
                        _ => ('N', None),
                    };
                    if tag != 'N' {
                        self.text.push(tag);
                        if let Some(inner) = inner {
                            self.ty(inner);
                        }
                        return;
                    }
                }
            }
            _ => {}
        }
        self.named(ty);
    }

    /// A type this module does not know: its `Schema` impl, if it has one, through a function
    /// shared by the fields of the same type.
    fn named(&mut self, ty: &Type) {
        let rust = ty.to_token_stream().to_string().replace(' ', "");
        self.text.push('N');
        self.string(&rust);
        // A type naming `Self` cannot be named inside the lookup function (and would recurse).
        let mentions_self = ty.to_token_stream().into_iter().any(|t| contains_self(&t));
        let index = if mentions_self {
            self.named.push((
                String::new(),
                quote!(::event_bus_core::__private::no_schema),
            ));
            self.named.len() - 1
        } else if let Some(i) = self.named.iter().position(|(text, _)| *text == rust) {
            i
        } else {
            let function = quote! {{
                fn __event_bus_schema() -> ::event_bus_core::__private::Option<::event_bus_core::__private::JsonValue> {
                    #[allow(unused_imports)]
                    use ::event_bus_core::__private::{ViaAny as _, ViaSchema as _};
                    (&::event_bus_core::__private::SchemaOf::<#ty>::new()).__event_bus_schema()
                }
                __event_bus_schema
            }};
            self.named.push((rust, function));
            self.named.len() - 1
        };
        self.number(index as u64);
    }
}

/// The doc comment of an item, its `///` lines joined.
fn doc(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|line| {
            line.strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_owned()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// The `#[serde(...)]` keys that decide a field's presence or how a struct treats unknown
/// fields. Malformed attributes are serde's to report.
#[derive(Default)]
struct SerdeFlags {
    default: bool,
    skip_serializing: bool,
    skip_serializing_if: bool,
    skip_deserializing: bool,
    flatten: bool,
    with: bool,
    deny_unknown_fields: bool,
}

fn serde_flags(attrs: &[Attribute]) -> SerdeFlags {
    let mut flags = SerdeFlags::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match key.as_str() {
                "default" => flags.default = true,
                "skip" => flags.skip_serializing = true,
                "skip_serializing" => flags.skip_serializing = true,
                "skip_serializing_if" => flags.skip_serializing_if = true,
                "skip_deserializing" => flags.skip_deserializing = true,
                "flatten" => flags.flatten = true,
                "with" | "serialize_with" | "deserialize_with" => flags.with = true,
                "deny_unknown_fields" => flags.deny_unknown_fields = true,
                _ => {}
            }
            // Skip whatever value follows (`= "..."`, `(...)`).
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<Expr>()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in meta.input);
            }
            Ok(())
        });
    }
    flags
}

/// A number literal as JSON text (`-5`, `1.5`).
fn number_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => Some(i.base10_digits().to_owned()),
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => {
            let digits = f.base10_digits();
            // `1.` and `1e3` are Rust, not JSON.
            digits.parse::<f64>().ok().map(|v| {
                if digits.contains('.') && !digits.ends_with('.') && !digits.contains('e') {
                    digits.to_owned()
                } else {
                    format!("{v:?}")
                }
            })
        }
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => number_text(expr).map(|n| format!("-{n}")),
        _ => None,
    }
}

/// The type arguments of a path segment.
fn type_args(args: &PathArguments) -> Vec<&Type> {
    match args {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn contains_self(token: &proc_macro2::TokenTree) -> bool {
    match token {
        proc_macro2::TokenTree::Ident(i) => i == "Self",
        proc_macro2::TokenTree::Group(g) => g.stream().into_iter().any(|t| contains_self(&t)),
        _ => false,
    }
}
