//! `#[subscriber("EVENT_TYPE", ...)]`: checks the function's shape and the options, re-emits the
//! function unchanged, and registers a descriptor with a type-erased thunk after it.
//!
//! The function takes `(event: Envelope<T>, ctx: Context)`, then any number of `State<S>`
//! parameters; the registration lists each `S`, so that a bus checks at start that it holds
//! them. The default name is the function's own name: moving it to another module keeps its
//! consumer group.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, LitStr, PathArguments, Signature, Type};

use crate::attr::{Ordering, Start, SubscriberArgs};
use crate::case;
use crate::ctxt::Ctxt;

/// What the checks found: everything code generation needs.
struct Model<'a> {
    args: SubscriberArgs,
    event_type: LitStr,
    function: &'a ItemFn,
    /// The `T` of the `Envelope<T>` parameter.
    event: &'a Type,
    /// The `S` of each `State<S>` parameter after the context, in order.
    state: Vec<&'a Type>,
}

/// Expands `#[subscriber(...)]`: the function as written, then the registration, or the
/// function and every error.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = SubscriberArgs::parse(&cx, args);
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => Some(function),
        Err(_) => {
            cx.error_at(
                Span::call_site(),
                "#[subscriber] goes on an `async fn name(event: Envelope<T>, ctx: Context) -> Result<(), E>` \
                 (optionally followed by `State<S>` parameters)",
            );
            None
        }
    };
    let model = function.as_ref().and_then(|f| build(&cx, args, f));
    let generated = match cx.check() {
        Ok(()) => generate(&model.expect("a model is built whenever no error was recorded")),
        Err(errors) => errors.into_compile_error(),
    };
    let mut out = item;
    out.extend(generated);
    out
}

fn build<'a>(cx: &Ctxt, args: SubscriberArgs, function: &'a ItemFn) -> Option<Model<'a>> {
    let sig = &function.sig;
    if let Some(event_type) = &args.event_type {
        if !case::is_valid_event_type(&event_type.value()) {
            cx.error_spanned_by(
                event_type,
                format!(
                    "invalid event type {:?}: event types match [A-Z][A-Z0-9_]*, e.g. \"TICKET_UPDATED\"",
                    event_type.value()
                ),
            );
        }
    }
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!(
                "a subscriber must be an `async fn`: write `async fn {}(...)`",
                sig.ident
            ),
        );
    }
    if sig.constness.is_some() {
        cx.error_spanned_by(sig.constness, "a subscriber cannot be a `const fn`");
    }
    if sig.unsafety.is_some() {
        cx.error_spanned_by(sig.unsafety, "a subscriber cannot be an `unsafe fn`");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error_spanned_by(
            &sig.generics,
            "a subscriber cannot be generic: it handles one concrete event type; \
             write one `#[subscriber]` per type",
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "a subscriber cannot be variadic");
    }
    let (event, state) = params(cx, sig)?;
    Some(Model {
        event_type: args.event_type.clone()?,
        args,
        function,
        event: event?,
        state,
    })
}

const SHAPE: &str = "(event: Envelope<T>, ctx: Context)";

/// Checks the parameters and finds the `T` of `Envelope<T>` (if the first parameter is one) and
/// the `S` of every `State<S>` after the context; `None` when the parameters cannot be used.
fn params<'a>(cx: &Ctxt, sig: &'a Signature) -> Option<(Option<&'a Type>, Vec<&'a Type>)> {
    let mut event = None;
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        cx.error_spanned_by(
            receiver,
            format!("a subscriber is a free function, not a method: write `async fn {}{SHAPE}` outside the `impl`", sig.ident),
        );
        return None;
    }
    if let Some(FnArg::Typed(first)) = sig.inputs.first() {
        match envelope_arg(&first.ty) {
            Some(ty) => event = Some(ty),
            None => cx.error_spanned_by(
                &first.ty,
                format!(
                    "the first parameter of a subscriber is the event, as `Envelope<T>` with `T` an \
                     event type: write `{}: Envelope<{}>`",
                    first.pat.to_token_stream(),
                    type_text(&first.ty),
                ),
            ),
        }
    }
    if sig.inputs.len() < 2 {
        let message = format!(
            "a subscriber takes two parameters, `{SHAPE}`, optionally followed by `State<S>` \
             parameters (shared state handed to the bus with `.state(value)`), but `{}` takes {}",
            sig.ident,
            sig.inputs.len()
        );
        if sig.inputs.is_empty() {
            cx.error_at(sig.paren_token.span.join(), message);
        } else {
            cx.error_spanned_by(&sig.inputs, message);
        }
        return None;
    }
    let mut state = Vec::new();
    let mut usable = true;
    for input in sig.inputs.iter().skip(2) {
        let found = match input {
            FnArg::Typed(param) => state_arg(&param.ty),
            FnArg::Receiver(_) => None,
        };
        match found {
            Some(ty) => state.push(ty),
            None => {
                usable = false;
                let what = match input {
                    FnArg::Typed(param) => format!(
                        ", but `{}` is `{}`",
                        param.pat.to_token_stream(),
                        type_text(&param.ty)
                    ),
                    FnArg::Receiver(_) => String::new(),
                };
                cx.error_spanned_by(
                    input,
                    format!(
                        "extra subscriber parameters must be `State<T>` (shared state handed to \
                         the bus with `.state(value)`){what}"
                    ),
                );
            }
        }
    }
    usable.then_some((event, state))
}

/// `T` in `Envelope<T>` (any path ending in `Envelope`).
fn envelope_arg(ty: &Type) -> Option<&Type> {
    single_type_arg(ty, "Envelope")
}

/// `S` in `State<S>` (any path ending in `State`).
fn state_arg(ty: &Type) -> Option<&Type> {
    single_type_arg(ty, "State")
}

/// `T` in `path::Name<T>`: a path type whose last segment is `name` with exactly one generic
/// argument, a type.
fn single_type_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (types.next(), types.next(), args.args.len()) {
        (Some(ty), None, 1) => Some(ty),
        _ => None,
    }
}

/// A type as the user wrote it, without token spacing (`events::TicketUpdated`).
fn type_text(ty: &Type) -> String {
    let text = ty.to_token_stream().to_string();
    let mut out = String::with_capacity(text.len());
    for part in text.split(' ') {
        let glue = out.ends_with(|c: char| {
            c.is_alphanumeric() || c == '_' || c == '>' || c == ')' || c == ']'
        }) && part.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        if glue {
            out.push(' ');
        }
        out.push_str(part);
    }
    out.replace(',', ", ")
}

fn generate(model: &Model<'_>) -> TokenStream {
    let private = quote!(::event_bus_core::__private);
    let sig = &model.function.sig;
    let fn_ident = &sig.ident;
    let fn_name = {
        let s = fn_ident.to_string();
        s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
    };
    let event = model.event;
    let event_type = &model.event_type;
    let args = &model.args;

    // `<T as Event>`, spanned on the user's `T`: a `T` without `#[derive(Event)]` is reported
    // once, at the parameter, with the trait's `on_unimplemented` message.
    let as_event = quote_spanned!(event.span()=> <#event as #private::Event>);

    // The event-type check, spanned on the string: fails to compile with a message naming the
    // string, the type and the type's actual name. (Const panics format only `"{}"` with one
    // `&str`, so the message is assembled in constants first.)
    let written = event_type.value();
    let type_name = type_text(event);
    let before = format!(
        "#[subscriber({written:?})] does not match the parameter's event type: `{type_name}` has \
         EVENT_TYPE \""
    );
    let middle = "\"; write #[subscriber(\"";
    let after = format!("\")], or take an `Envelope` of the event type named {written:?}");
    // One constant holds both the check and the thunk, so that a `T` without `#[derive(Event)]`
    // is reported once (rustc reports one failed bound per span and body).
    let check = quote_spanned! {event_type.span()=>
        let __event_bus_actual: &str = #as_event::EVENT_TYPE;
        if !#private::str_eq(__event_bus_actual, #event_type) {
            let (__event_bus_buffer, __event_bus_len) = #private::concat_into::<1024>(&[
                #before,
                __event_bus_actual,
                #middle,
                __event_bus_actual,
                #after,
            ]);
            let (__event_bus_message, _) = __event_bus_buffer.split_at(__event_bus_len);
            match ::core::str::from_utf8(__event_bus_message) {
                ::core::result::Result::Ok(message) => ::core::panic!("{}", message),
                ::core::result::Result::Err(_) => ::core::panic!(#before),
            }
        }
    };

    // The handler's path is for messages only. The default name (the consumer group) is the
    // bare function name, which stays the same when the function moves to another module; two
    // functions of one name are refused at start, with both locations.
    let handler = quote!(::core::concat!(::core::module_path!(), "::", #fn_name));
    let name = match &args.name {
        Some(name) => name.to_token_stream(),
        None => LitStr::new(&fn_name, fn_ident.span()).to_token_stream(),
    };

    let mut options = quote!(#private::SubscriberOptions::DEFAULT);
    if let Some(lit) = &args.channel {
        options.extend(quote_spanned!(lit.span()=> .channel(#lit)));
    }
    if let Some((lit, n)) = &args.concurrency {
        let n = proc_macro2::Literal::u32_unsuffixed(*n);
        options.extend(quote_spanned!(lit.span()=> .concurrency(#n)));
    }
    if let Some((lit, n)) = &args.max_attempts {
        let n = proc_macro2::Literal::u32_unsuffixed(*n);
        options.extend(quote_spanned!(lit.span()=> .max_attempts(#n)));
    }
    if let Some((lit, start)) = &args.start {
        let variant = match start {
            Start::Earliest => quote!(Earliest),
            Start::Latest => quote!(Latest),
        };
        options.extend(quote_spanned!(lit.span()=> .start(#private::StartFrom::#variant)));
    }
    if let Some((lit, secs)) = &args.dedupe {
        let secs = proc_macro2::Literal::u64_unsuffixed(*secs);
        options
            .extend(quote_spanned!(lit.span()=> .dedupe(::core::time::Duration::from_secs(#secs))));
    }
    if let Some((lit, ordering)) = &args.ordering {
        let variant = match ordering {
            Ordering::PerTenant => quote!(PerTenant),
            Ordering::None => quote!(None),
        };
        options.extend(quote_spanned!(lit.span()=> .ordering(#private::Ordering::#variant)));
    }

    // One function per subscriber, `run`: it fetches each `State<S>` (if any), calls the
    // handler and boxes its future. The thunk registered is a function calling the one core
    // function generic over the event type only (`Event::__prepare`, hidden), shared by the
    // subscribers of one type. The call to `handler_future` is spanned on the function's name: a return type
    // that is not `Result<(), impl Into<HandlerError>>`, or a future that is not `Send`, is
    // reported there.
    let event_ident = Ident::new("__event_bus_event", Span::call_site());
    let ctx_ident = Ident::new("__event_bus_ctx", Span::call_site());
    let state_idents: Vec<Ident> = (0..model.state.len())
        .map(|i| format_ident!("__event_bus_state_{}", i))
        .collect();
    // Each `State<S>` is fetched from the context before the call; a missing one (possible
    // only if the start check was skipped) is the permanent error `ctx.state` gives.
    let fetch = model.state.iter().zip(&state_idents).map(|(ty, ident)| {
        // The whole path is spanned on `T`, so that a `T` that is not `Send + Sync` is
        // reported on the parameter.
        let private = quote_spanned!(ty.span()=> ::event_bus_core::__private);
        quote_spanned! {ty.span()=>
            let #ident = match #private::State::<#ty>::from_context(&#ctx_ident) {
                ::core::result::Result::Ok(state) => state,
                ::core::result::Result::Err(missing) => {
                    return #private::HandlerFuture::ready(
                        ::core::result::Result::Err(#private::missing_state(missing)),
                    );
                }
            };
        }
    });
    let run = {
        // Every token spanned on the name, so that each error is reported once, there.
        let private = quote_spanned!(fn_ident.span()=> ::event_bus_core::__private);
        let call = quote_spanned! {fn_ident.span()=>
            #fn_ident(#event_ident, #ctx_ident, #(#state_idents),*)
        };
        // With `State<S>` parameters, the call is awaited in an async block: its `Send` check
        // is deferred, and skipped when a `State<S>` already failed (an `S` that is not `Sync`
        // is reported once, at the parameter, not again at the handler's future).
        let call = if model.state.is_empty() {
            call
        } else {
            quote_spanned!(fn_ident.span()=> async move { #call.await })
        };
        quote_spanned! {fn_ident.span()=>
            fn __event_bus_run(
                #event_ident: #private::Envelope<#event>,
                #ctx_ident: #private::Context,
            ) -> #private::HandlerFuture {
                #(#fetch)*
                #private::handler_future(#call)
            }
        }
    };
    // A function item, not a closure: a closure coerced to a function pointer adds a
    // `FnOnce::call_once` shim per subscriber. Its path to the event type's `prepare` is
    // spanned like the check's, so that a `T` without `#[derive(Event)]` gives the same error
    // twice, which rustc reports once.
    let prepare = quote_spanned! {fn_ident.span()=>
        fn __event_bus_prepare(
            bytes: &[u8],
        ) -> ::core::result::Result<#private::Prepared, #private::Failure> {
            #as_event::__prepare(bytes, __event_bus_run)
        }
        __event_bus_prepare
    };
    let state_keys = model
        .state
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> #private::StateKey::of::<#ty>()));
    let location = quote_spanned!(fn_ident.span()=> file: ::core::file!(), line: ::core::line!(),);

    quote! {
        const _: () = {
            #run
            const __EVENT_BUS_PREPARE: fn(
                &[u8],
            ) -> ::core::result::Result<#private::Prepared, #private::Failure> = {
                #check
                #prepare
            };
            const __EVENT_BUS_STATE: &[#private::StateKey] = &[#(#state_keys),*];

            #private::inventory::submit! {
                #private::SubscriberRegistration {
                    name: #name,
                    event_type: #event_type,
                    options: #options,
                    handler: #handler,
                    #location
                    prepare: __EVENT_BUS_PREPARE,
                    state: __EVENT_BUS_STATE,
                }
            }
        };
    }
}
