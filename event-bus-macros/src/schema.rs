//! The schema part of `#[derive(Event)]`: the payload's description as constant data
//! (`__private::PayloadSchema`), which `event_bus_core::schema` turns into JSON Schema only when
//! one is exported. Types are read from the source text; a type this module does not know is
//! described by its `Schema` impl, looked up through autoref specialisation in one small
//! function per such field, and is any JSON when it has none (never a compile error).

use proc_macro2::{Literal, TokenStream};
use quote::{quote, ToTokens};
use syn::{Attribute, Expr, ExprLit, ExprUnary, GenericArgument, Lit, PathArguments, Type, UnOp};

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

/// The path of `::event_bus_core::__private` in the schema: the alias that `#[derive(Event)]`
/// declares once in its block (`use ::event_bus_core::__private as __event_bus_private;`), so
/// that each of the many paths in the description is one segment long (a fifth of the tokens
/// to expand, resolve and check).
pub(crate) fn private() -> TokenStream {
    quote!(__event_bus_private)
}

/// The payload's `&'static PayloadSchema`.
pub(crate) fn payload(
    struct_attrs: &[Attribute],
    version: u32,
    none_as_null: bool,
    fields: &[SchemaField<'_>],
) -> TokenStream {
    let p = private();
    let struct_doc = doc(struct_attrs);
    let container = serde_flags(struct_attrs);
    let deny_unknown_fields = container.deny_unknown_fields;
    let container_default = container.default;
    let fields = fields.iter().filter_map(|field| {
        let flags = serde_flags(field.attrs);
        if flags.skip_serializing {
            return None;
        }
        let presence = if flags.flatten {
            quote!(Flatten)
        } else if flags.with {
            quote!(Custom)
        } else if flags.default || flags.skip_serializing_if || flags.skip_deserializing {
            quote!(Optional)
        } else {
            quote!(Always)
        };
        let name = field.json_name;
        let doc = doc(field.attrs);
        let ty = type_schema(field.ty);
        let tenant = match field.tenant {
            None => quote!(#p::None),
            Some(true) => quote!(#p::Some(#p::TenantRule::AnyString)),
            Some(false) => quote!(#p::Some(#p::TenantRule::Uuid)),
        };
        let rules = field.rules.iter().map(rule);
        Some(quote! {
            #p::FieldSchema {
                name: #name,
                doc: #doc,
                ty: #ty,
                presence: #p::Presence::#presence,
                tenant: #tenant,
                rules: &[#(#rules),*],
            }
        })
    });
    quote! {
        &#p::PayloadSchema {
            doc: #struct_doc,
            version: #version,
            none_as_null: #none_as_null,
            deny_unknown_fields: #deny_unknown_fields,
            container_default: #container_default,
            described: true,
            fields: &[#(#fields),*],
        }
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

/// One rule, as `__private::RuleSchema`.
fn rule(rule: &Rule) -> TokenStream {
    let p = private();
    let some_u64 =
        |lit: &Option<syn::LitInt>| match lit.as_ref().and_then(|l| l.base10_parse::<u64>().ok()) {
            Some(n) => {
                let n = Literal::u64_suffixed(n);
                quote!(#p::Some(#n))
            }
            None => quote!(#p::None),
        };
    let some_text = |expr: &Option<Box<Expr>>| match expr.as_deref().and_then(number_text) {
        Some(text) => quote!(#p::Some(#text)),
        None => quote!(#p::None),
    };
    match rule {
        Rule::NonEmpty(_) => quote!(#p::RuleSchema::NonEmpty),
        Rule::Uuid(_) => quote!(#p::RuleSchema::Uuid),
        Rule::Length { min, max, .. } => {
            let (min, max) = (some_u64(min), some_u64(max));
            quote!(#p::RuleSchema::Length { min: #min, max: #max })
        }
        Rule::Range { min, max, .. } => {
            let (min, max) = (some_text(min), some_text(max));
            quote!(#p::RuleSchema::Range { min: #min, max: #max })
        }
        Rule::Custom { function, .. } => {
            let path = function.to_token_stream().to_string().replace(' ', "");
            quote!(#p::RuleSchema::Custom(#path))
        }
    }
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

/// A type, as a `__private::TypeSchema` constant.
fn type_schema(ty: &Type) -> TokenStream {
    let p = private();
    match ty {
        Type::Paren(t) => return type_schema(&t.elem),
        Type::Group(t) => return type_schema(&t.elem),
        Type::Reference(t) => return type_schema(&t.elem),
        Type::Slice(t) => {
            let item = type_schema(&t.elem);
            return quote!(#p::TypeSchema::Array(&#item));
        }
        Type::Array(t) => {
            let item = type_schema(&t.elem);
            return quote!(#p::TypeSchema::Array(&#item));
        }
        Type::Tuple(t) if !t.elems.is_empty() => {
            let items = t.elems.iter().map(type_schema);
            return quote!(#p::TypeSchema::Tuple(&[#(#items),*]));
        }
        Type::Path(path) if path.qself.is_none() => {
            if let Some(last) = path.path.segments.last() {
                let name = last.ident.to_string();
                let args = type_args(&last.arguments);
                let known = match (name.as_str(), args.as_slice()) {
                    ("bool", []) => Some(quote!(#p::TypeSchema::Bool)),
                    (
                        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32"
                        | "u64" | "u128" | "usize",
                        [],
                    ) => Some(quote!(#p::TypeSchema::Integer(#name))),
                    ("f32" | "f64", []) => Some(quote!(#p::TypeSchema::Number)),
                    ("String" | "str", []) => Some(quote!(#p::TypeSchema::String)),
                    ("char", []) => Some(quote!(#p::TypeSchema::Char)),
                    ("Uuid", []) => Some(quote!(#p::TypeSchema::Uuid)),
                    ("DateTime", [_]) => Some(quote!(#p::TypeSchema::DateTime)),
                    ("NaiveDate", []) => Some(quote!(#p::TypeSchema::Date)),
                    ("NaiveDateTime", []) => Some(quote!(#p::TypeSchema::NaiveDateTime)),
                    ("NaiveTime", []) => Some(quote!(#p::TypeSchema::NaiveTime)),
                    ("Option", [inner]) => {
                        let inner = type_schema(inner);
                        Some(quote!(#p::TypeSchema::Option(&#inner)))
                    }
                    ("Vec" | "VecDeque" | "LinkedList", [item]) => {
                        let item = type_schema(item);
                        Some(quote!(#p::TypeSchema::Array(&#item)))
                    }
                    ("HashSet" | "BTreeSet" | "IndexSet", [item, ..]) => {
                        let item = type_schema(item);
                        Some(quote!(#p::TypeSchema::Set(&#item)))
                    }
                    ("HashMap" | "BTreeMap" | "IndexMap" | "Map", [_, value, ..]) => {
                        let value = type_schema(value);
                        Some(quote!(#p::TypeSchema::Map(&#value)))
                    }
                    ("Box" | "Arc" | "Rc" | "Cow", [inner]) => Some(type_schema(inner)),
                    _ => None,
                };
                if let Some(known) = known {
                    return known;
                }
            }
        }
        _ => {}
    }
    named(ty)
}

/// A type this module does not know: its `Schema` impl, if it has one.
fn named(ty: &Type) -> TokenStream {
    let p = private();
    let rust = ty.to_token_stream().to_string().replace(' ', "");
    // A type naming `Self` cannot be named inside the lookup function (and would recurse).
    let mentions_self = ty.to_token_stream().into_iter().any(|t| contains_self(&t));
    let lookup = if mentions_self {
        quote!(#p::None)
    } else {
        quote! {
            #[allow(unused_imports)]
            use #p::{ViaAny as _, ViaSchema as _};
            (&#p::SchemaOf::<#ty>::new()).__event_bus_schema()
        }
    };
    quote! {
        #p::TypeSchema::Named {
            rust: #rust,
            schema: {
                fn __event_bus_schema() -> #p::Option<#p::JsonValue> {
                    #lookup
                }
                __event_bus_schema
            },
        }
    }
}

fn contains_self(token: &proc_macro2::TokenTree) -> bool {
    match token {
        proc_macro2::TokenTree::Ident(i) => i == "Self",
        proc_macro2::TokenTree::Group(g) => g.stream().into_iter().any(|t| contains_self(&t)),
        _ => false,
    }
}
