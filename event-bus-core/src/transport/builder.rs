//! The builder methods every bus shares, written once: each bus's builder holds a
//! [`BusOptions`](crate::transport::BusOptions) and expands
//! [`bus_builder_options!`](crate::transport::bus_builder_options) inside its `impl` block.

/// Expands to the shared builder methods (`prefix`, `layout`, `allow_group_name`, `state`,
/// `subscribe`, `register_event`, `only`, `discover`, `expect_subscribers`,
/// `allow_no_subscribers`, `retry_policy`, `with_options`, `shutdown_timeout`,
/// `metrics_interval`) of a builder whose [`BusOptions`](crate::transport::BusOptions) is at
/// the given field path of `self`.
///
/// ```
/// use event_bus_core::transport::{bus_builder_options, BusOptions};
///
/// #[derive(Debug, Default)]
/// pub struct MyBusBuilder {
///     common: BusOptions,
/// }
///
/// impl MyBusBuilder {
///     bus_builder_options!(common);
/// }
///
/// let b = MyBusBuilder::default().prefix("app").allow_no_subscribers(true);
/// assert_eq!(b.common.prefix, "app");
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! __bus_builder_options {
    ($($field:ident).+) => {
        /// The stream prefix: event type `T` lives in the stream `{prefix}:T` (default
        /// `event`).
        pub fn prefix(mut self, prefix: impl ::core::convert::Into<::std::string::String>) -> Self {
            self.$($field).+.prefix = prefix.into();
            self
        }

        /// How stream keys are laid out (default
        /// [`StreamLayout::PerEventType`]($crate::StreamLayout), `{prefix}:{EVENT_TYPE}`;
        /// the seed as it runs today uses `PerChannel`, `{prefix}:{channel}:{EVENT_TYPE}`).
        pub fn layout(mut self, layout: $crate::StreamLayout) -> Self {
            self.$($field).+.layout = layout;
            self
        }

        /// Lets a subscriber take a reserved group name (`event-processors`, the seed's one
        /// group): only when sharing the seed's group, and its entries, is intended.
        pub fn allow_group_name(mut self, name: impl ::core::convert::Into<::std::string::String>) -> Self {
            self.$($field).+.allowed_reserved_names.push(name.into());
            self
        }

        /// Hands a value to every handler (a `State<T>` parameter, or `ctx.state::<T>()`); one
        /// value per type. Start fails if a subscriber needs a type the bus was not given.
        pub fn state<T: ::core::marker::Send + ::core::marker::Sync + 'static>(mut self, value: T) -> Self {
            self.$($field).+.state.insert(value);
            self
        }

        /// Adds a subscriber explicitly (besides the discovered `#[subscriber]`s).
        pub fn subscribe(mut self, subscriber: $crate::Subscriber) -> Self {
            self.$($field).+.selection.subscribe(subscriber);
            self
        }

        /// Registers an event type explicitly (for targets where `inventory` cannot run).
        pub fn register_event<E: $crate::Event>(mut self) -> Self {
            self.$($field).+.selection.register_event::<E>();
            self
        }

        /// Runs only the named subscribers; start fails if one is not found.
        pub fn only<I, S>(mut self, names: I) -> Self
        where
            I: ::core::iter::IntoIterator<Item = S>,
            S: ::core::convert::Into<::std::string::String>,
        {
            self.$($field).+.selection.only(names);
            self
        }

        /// Whether the `#[derive(Event)]`s and `#[subscriber]`s linked into the binary are used
        /// (default: yes). Without discovery, register both explicitly (`register_event`,
        /// `subscribe`): the path for targets where `inventory` cannot run.
        pub fn discover(mut self, discover: bool) -> Self {
            self.$($field).+.selection.discover(discover);
            self
        }

        /// Start fails unless every named subscriber is found (see the linking rule).
        pub fn expect_subscribers<I, S>(mut self, names: I) -> Self
        where
            I: ::core::iter::IntoIterator<Item = S>,
            S: ::core::convert::Into<::std::string::String>,
        {
            self.$($field).+.selection.expect(names);
            self
        }

        /// Whether `start` may run with no subscriber at all (default: no, start fails: the
        /// handler crate was probably not linked). Say yes in a publish-only process.
        pub fn allow_no_subscribers(mut self, allow: bool) -> Self {
            self.$($field).+.allow_no_subscribers = allow;
            self
        }

        /// How failed handler runs are retried, and the crash-loop guard (see
        /// [`RetryPolicy`]($crate::RetryPolicy)).
        pub fn retry_policy(mut self, policy: $crate::RetryPolicy) -> Self {
            self.$($field).+.retry = policy;
            self
        }

        /// Applies `configure` to the options every bus shares: one function can then set up
        /// any bus's builder the same way (`fn common(options: &mut BusOptions)`).
        pub fn with_options(
            mut self,
            configure: impl ::core::ops::FnOnce(&mut $crate::transport::BusOptions),
        ) -> Self {
            configure(&mut self.$($field).+);
            self
        }

        /// How long shutdown waits for in-flight handlers (default 30 s).
        pub fn shutdown_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.$($field).+.shutdown_timeout = timeout;
            self
        }

        /// How often each subscriber's `event_bus_group_lag` and `event_bus_group_pending`
        /// gauges are sampled (default 15 s; on Redis one `XINFO GROUPS` per stream per
        /// interval). `Duration::ZERO` turns the sampling off.
        pub fn metrics_interval(mut self, interval: ::std::time::Duration) -> Self {
            self.$($field).+.metrics_interval = interval;
            self
        }
    };
}

#[doc(inline)]
pub use crate::__bus_builder_options as bus_builder_options;
