//! `#[derive(Event)]`: a model of the struct (its name, tenant field, rules and JSON names) is
//! built and checked first, then the `Event` impl and the registry entry are generated from it.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, Expr, ExprLit, Fields, Ident, Lit, LitFloat, LitStr, Type,
};

use crate::attr::{self, Rule};
use crate::case::{self, RenameRule};
use crate::ctxt::Ctxt;
use crate::schema::{self, SchemaField};

/// The checked model of an event struct.
struct Model<'a> {
    ident: &'a Ident,
    /// The `EVENT_TYPE`.
    event_type: LitStr,
    /// The index of the tenant field in `fields`.
    tenant: usize,
    /// `#[event(tenant(any_string))]`: the attribute's tokens, to span what it generates on.
    any_string: Option<TokenStream>,
    /// `#[event(channels(...))]`
    channels: Option<Vec<LitStr>>,
    /// `#[event(none_as_null)]`
    none_as_null: bool,
    /// `#[event(version = N)]` (default 1)
    version: u32,
    /// The struct's attributes, for the schema (doc comment, serde flags).
    attrs: &'a [Attribute],
    fields: Vec<FieldModel<'a>>,
}

struct FieldModel<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    /// The field's name in JSON.
    json_name: String,
    attrs: attr::Field,
    /// The field's attributes, for the schema (doc comment, serde flags).
    raw_attrs: &'a [Attribute],
}

/// Expands `#[derive(Event)]`.
pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let model = build(&cx, input);
    cx.check()?;
    let model = model.expect("a model is built whenever no error was recorded");
    Ok(generate(&model))
}

fn build<'a>(cx: &Ctxt, input: &'a DeriveInput) -> Option<Model<'a>> {
    let container = attr::Container::from_attrs(cx, &input.attrs);

    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        cx.error_spanned_by(
            &input.generics,
            "an event cannot be generic: each event type needs one fixed name and wire format; \
             define a concrete struct per event",
        );
    }

    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => Some(named),
            Fields::Unnamed(fields) => {
                cx.error_spanned_by(
                    fields,
                    format!(
                        "#[derive(Event)] needs named fields (the payload is a JSON object): \
                         write `struct {} {{ tenant_id: uuid::Uuid, ... }}`",
                        input.ident
                    ),
                );
                None
            }
            Fields::Unit => {
                cx.error_spanned_by(
                    &input.ident,
                    format!(
                        "#[derive(Event)] needs named fields, at least the tenant: \
                         write `struct {} {{ tenant_id: uuid::Uuid }}`",
                        input.ident
                    ),
                );
                None
            }
        },
        Data::Enum(data) => {
            cx.error_spanned_by(
                data.enum_token,
                "#[derive(Event)] supports only structs with named fields, not enums: \
                 define one struct per event type",
            );
            None
        }
        Data::Union(data) => {
            cx.error_spanned_by(
                data.union_token,
                "#[derive(Event)] supports only structs with named fields, not unions",
            );
            None
        }
    };

    let event_type = match &container.name {
        Some(lit) => {
            if !case::is_valid_event_type(&lit.value()) {
                cx.error_spanned_by(
                    lit,
                    format!(
                        "invalid event type name {:?}: it must match [A-Z][A-Z0-9_]* (uppercase \
                         letters, digits and underscores, starting with a letter), e.g. \"{}\"",
                        lit.value(),
                        suggest(&lit.value()),
                    ),
                );
            }
            lit.clone()
        }
        None => {
            let name = case::screaming_snake(&unraw(&input.ident));
            if !case::is_valid_event_type(&name) {
                cx.error_spanned_by(
                    &input.ident,
                    format!(
                        "the event type name derived from `{}` is {name:?}, which is not \
                         [A-Z][A-Z0-9_]*; set one with #[event(name = \"...\")]",
                        input.ident
                    ),
                );
            }
            LitStr::new(&name, input.ident.span())
        }
    };

    let named = named?;
    let fields: Vec<FieldModel<'a>> = named
        .named
        .iter()
        .map(|field| {
            let ident = field.ident.as_ref().expect("named fields have names");
            let attrs = attr::Field::from_attrs(cx, &field.attrs);
            let json_name = match (&attrs.rename, container.rename_all) {
                (Some(name), _) => name.clone(),
                (None, Some(rule)) => rule.apply_to_field(&unraw(ident)),
                (None, None) => RenameRule::Snake.apply_to_field(&unraw(ident)),
            };
            FieldModel {
                ident,
                ty: &field.ty,
                json_name,
                attrs,
                raw_attrs: &field.attrs,
            }
        })
        .collect();

    let marked: Vec<&FieldModel<'a>> = fields.iter().filter(|f| f.attrs.tenant.is_some()).collect();
    for extra in marked.iter().skip(1) {
        cx.error_spanned_by(
            extra.attrs.tenant.as_ref().map(|t| &t.tokens),
            format!(
                "two fields are marked #[event(tenant)] (`{}` and `{}`); an event has one tenant: \
                 keep the mark on one of them",
                marked[0].ident, extra.ident
            ),
        );
    }
    let tenant = marked.first().map(|f| f.ident).or_else(|| {
        fields
            .iter()
            .find(|f| f.ident == "tenant_id")
            .map(|f| f.ident)
    });
    if tenant.is_none() {
        cx.error_spanned_by(
            &input.ident,
            format!(
                "`{}` has no tenant field: add a `tenant_id: uuid::Uuid` field or mark one with \
                 #[event(tenant)]",
                input.ident
            ),
        );
    }
    let tenant_ident = tenant?;
    let tenant = fields
        .iter()
        .position(|f| f.ident == tenant_ident)
        .expect("the tenant is one of the fields");
    let any_string = fields[tenant]
        .attrs
        .tenant
        .as_ref()
        .filter(|t| t.any_string)
        .map(|t| t.tokens.clone());
    if let Some(tokens) = &any_string {
        if is_uuid(fields[tenant].ty) {
            cx.error_spanned_by(
                tokens,
                format!(
                    "`tenant(any_string)` applies to a `String` tenant field, but `{}` is a `Uuid`, \
                     which always holds a UUID: write #[event(tenant)], or make the field a `String`",
                    tenant_ident
                ),
            );
        }
    }
    Some(Model {
        ident: &input.ident,
        event_type,
        tenant,
        any_string,
        channels: container.channels,
        none_as_null: container.none_as_null.is_some(),
        version: container.version.unwrap_or(1),
        attrs: &input.attrs,
        fields,
    })
}

/// Whether a type is (syntactically) `Uuid` or a path ending in it (`uuid::Uuid`).
fn is_uuid(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "Uuid" && last.arguments.is_empty()),
        Type::Group(group) => is_uuid(&group.elem),
        Type::Paren(paren) => is_uuid(&paren.elem),
        _ => false,
    }
}

/// `r#type` -> `type`.
fn unraw(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

/// A valid name close to `name`, for the error message.
fn suggest(name: &str) -> String {
    let upper = if name.chars().any(char::is_lowercase) {
        case::screaming_snake(name)
    } else {
        name.to_owned()
    };
    let cleaned: String = upper
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let trimmed = cleaned.trim_start_matches(|c: char| !c.is_ascii_uppercase());
    if case::is_valid_event_type(trimmed) {
        trimmed.to_owned()
    } else {
        "TICKET_UPDATED".to_owned()
    }
}

fn generate(model: &Model<'_>) -> TokenStream {
    let ident = model.ident;
    let event_type = &model.event_type;
    let private = quote!(::event_bus_core::__private);
    let errors = Ident::new("__event_bus_errors", Span::call_site());

    // The tenant field is read through one function whose return type carries the
    // `TenantField` bound, spanned on the field's type: a field of the wrong type is reported
    // once, there. With `tenant(any_string)` the bound is `AnyStringTenant`, spanned on the
    // attribute.
    let tenant = &model.fields[model.tenant];
    let bound_span = match &model.any_string {
        Some(tokens) => tokens.span(),
        None => tenant.ty.span(),
    };
    let mut tenant_member = tenant.ident.clone();
    tenant_member.set_span(bound_span);
    let tenant_access = quote_spanned!(bound_span=> &event.#tenant_member);
    let tenant_path = &tenant.json_name;
    let tenant_trait = match model.any_string {
        Some(_) => quote_spanned!(bound_span=> ::event_bus_core::__private::rules::AnyStringTenant),
        None => quote_spanned!(bound_span=> ::event_bus_core::__private::rules::TenantField),
    };
    let tenant_bound = quote_spanned! {bound_span=>
        -> &(impl #tenant_trait + ?::core::marker::Sized)
    };
    let tenant_fn = Ident::new("__event_bus_tenant", Span::call_site());
    let (tenant_of, tenant_text, tenant_check) = match model.any_string {
        Some(_) => (
            quote!(any_string_tenant_of),
            quote!(any_string_tenant_text),
            quote!(any_string_tenant),
        ),
        None => (quote!(tenant_of), quote!(tenant_text), quote!(tenant)),
    };

    let channels = model.channels.as_ref().map(|channels| {
        quote! {
            const CHANNELS: &'static [&'static str] = &[#(#channels),*];
        }
    });
    let omit_none = model.none_as_null.then(|| {
        quote! {
            const OMIT_NONE: bool = false;
        }
    });

    let rule_checks: Vec<TokenStream> = model
        .fields
        .iter()
        .flat_map(|field| field.attrs.rules.iter().map(move |rule| (field, rule)))
        .map(|(field, rule)| rule_check(field, rule, &errors))
        .collect();

    let schema_fields: Vec<SchemaField<'_>> = model
        .fields
        .iter()
        .enumerate()
        .map(|(i, field)| SchemaField {
            json_name: &field.json_name,
            ty: field.ty,
            attrs: field.raw_attrs,
            rules: &field.attrs.rules,
            tenant: (i == model.tenant).then_some(model.any_string.is_some()),
        })
        .collect();
    let schema = schema::payload(
        model.attrs,
        model.version,
        model.none_as_null,
        &schema_fields,
    );

    let type_name = unraw(ident);
    quote! {
        const _: () = {
            #[inline]
            fn #tenant_fn(event: &#ident) #tenant_bound {
                #tenant_access
            }

            #[automatically_derived]
            impl #private::Event for #ident {
                const EVENT_TYPE: &'static str = #event_type;
                #channels
                #omit_none
                const __SCHEMA: &'static #private::EncodedSchema = #schema;

                #[inline]
                fn tenant_id(&self) -> #private::Uuid {
                    #private::rules::#tenant_of(#tenant_fn(self))
                }

                #[inline]
                fn tenant(&self) -> #private::Cow<'_, str> {
                    #private::rules::#tenant_text(#tenant_fn(self))
                }

                // A plain function of this crate: the decoding code of the type is compiled
                // here, once, and called by the subscribers of every other crate.
                fn __decode_envelope(
                    bytes: &[u8],
                ) -> ::core::result::Result<#private::Envelope<Self>, #private::Failure> {
                    #private::decode::<Self>(bytes)
                }

                fn validate(&self) -> ::core::result::Result<(), #private::ValidationErrors> {
                    let mut #errors = #private::ValidationErrors::new();
                    #private::rules::#tenant_check(#tenant_fn(self), #tenant_path, &mut #errors);
                    #(#rule_checks)*
                    #errors.into_result()
                }
            }

            #[automatically_derived]
            impl #private::Schema for #ident {
                fn json_schema() -> #private::JsonValue {
                    #private::payload_schema(<Self as #private::Event>::__SCHEMA)
                }
            }

            #private::inventory::submit! {
                #private::EventRegistration::of::<#ident>(
                    ::core::concat!(::core::module_path!(), "::", #type_name)
                )
            }
        };
    }
}

/// One rule's call, spanned on the rule's name so that a rule on a field of the wrong type is
/// reported there.
fn rule_check(field: &FieldModel<'_>, rule: &Rule, errors: &Ident) -> TokenStream {
    let path = &field.json_name;
    let span = match rule {
        Rule::NonEmpty(span) | Rule::Uuid(span) => *span,
        Rule::Length { span, .. } | Rule::Range { span, .. } | Rule::Custom { span, .. } => *span,
    };
    // Every token of the call, the field access included, carries the rule's span.
    let rules = quote_spanned!(span=> ::event_bus_core::__private::rules);
    let mut member = field.ident.clone();
    member.set_span(span);
    let value = quote_spanned!(span=> &self.#member);
    let option = |bound: Option<TokenStream>| match bound {
        Some(v) => quote_spanned!(span=> ::core::option::Option::Some(#v)),
        None => quote_spanned!(span=> ::core::option::Option::None),
    };
    match rule {
        Rule::NonEmpty(_) => quote_spanned! {span=>
            #rules::non_empty(#value, #path, &mut #errors);
        },
        Rule::Uuid(_) => quote_spanned! {span=>
            #rules::uuid(#value, #path, &mut #errors);
        },
        Rule::Length { min, max, .. } => {
            let min = option(min.as_ref().map(ToTokens::to_token_stream));
            let max = option(max.as_ref().map(ToTokens::to_token_stream));
            quote_spanned! {span=>
                #rules::length(#value, #min, #max, #path, &mut #errors);
            }
        }
        Rule::Range { min, max, .. } => {
            let float = is_float(field.ty);
            let min = option(min.as_ref().map(|e| range_literal(e, float)));
            let max = option(max.as_ref().map(|e| range_literal(e, float)));
            quote_spanned! {span=>
                #rules::range(#value, #min, #max, #path, &mut #errors);
            }
        }
        Rule::Custom { function, .. } => quote_spanned! {span=>
            #rules::custom(#value, #function, #path, &mut #errors);
        },
    }
}

/// Whether a field is (syntactically) `f32`/`f64` or an `Option` of one: integer bounds are
/// then written as float literals, so that `range(min = 0)` works on an `f64`.
fn is_float(ty: &Type) -> bool {
    let Type::Path(path) = ty else { return false };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    if last.ident == "f32" || last.ident == "f64" {
        return true;
    }
    if last.ident == "Option" {
        if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
            if let Some(syn::GenericArgument::Type(inner)) = args.args.first() {
                return is_float(inner);
            }
        }
    }
    false
}

/// A `range` bound as written, with an unsuffixed integer turned into a float for float fields.
fn range_literal(expr: &Expr, float: bool) -> TokenStream {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) if float && int.suffix().is_empty() => {
            LitFloat::new(&format!("{}.0", int.base10_digits()), int.span()).to_token_stream()
        }
        Expr::Unary(unary) if float => {
            let op = &unary.op;
            let inner = range_literal(&unary.expr, float);
            quote!(#op #inner)
        }
        other => other.to_token_stream(),
    }
}
